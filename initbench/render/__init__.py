"""Turning numbers into what a person reads: number and table formatting (terminal and Markdown),
the HTML page and the matplotlib figures.

May import everything below it (core to engines); never experiments, runs, outputs or the CLI.
"""
