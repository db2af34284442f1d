"""The Typer command line. :mod:`~initbench.cli.app` holds the plumbing (the app, how errors are
shown, the shared options), :mod:`~initbench.cli.run` the commands that run a net,
:mod:`~initbench.cli.sweep` the sweep, :mod:`~initbench.cli.inspect` the commands that read
(report, gain, phase, list), and :mod:`~initbench.cli.entry` the console script (signal handlers
first). Importing the package registers every command on :data:`~initbench.cli.app.app`.

The top of the pipeline: may import anything; nothing in initbench imports it.
"""

from initbench.cli import app, inspect, run, sweep  # modules, so that initbench.cli.app stays the module, not the Typer app in it

#: Every command, in the order ``initbench --help`` lists them.
COMMANDS = {
    "run": run.run,
    "compare": run.compare,
    "probe": run.probe,
    "recommend": run.recommend,
    "sweep": sweep.sweep,
    "report": inspect.report,
    "gain": inspect.gain,
    "phase": inspect.phase,
    "list": inspect.list_entries,
}

for name, command in COMMANDS.items():
    app.app.command(name)(command)
