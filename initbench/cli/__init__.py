"""The Typer command line: :mod:`~initbench.cli.app` (the commands) and
:mod:`~initbench.cli.entry` (the console script, signal handlers first).

The top of the pipeline: may import anything; nothing in initbench imports it.
"""
