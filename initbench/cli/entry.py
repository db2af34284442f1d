"""The ``initbench`` console script: signal handlers first, then the CLI.

This module imports nothing heavy: :func:`main` installs the handlers of
:mod:`initbench.core.signals` before the CLI (typer, rich, torch) is imported, so an early Ctrl-C
exits quietly instead of printing an import traceback.
"""

from __future__ import annotations

import signal
import sys

from initbench.core import signals
from initbench.core.signals import deferred, exit_code, install

#: The commands that compute, and so import numpy and torch. An interrupt that lands inside those
#: imports can be swallowed by a library's own fallback code and leave a module half-imported
#: (numpy without ``numpy.matrix``), to fail later as an unrelated error: :func:`main` imports them
#: first, with the signals held until the imports are done (a second or two at most).
COMPUTING = ("run", "compare", "probe", "sweep", "gain", "phase", "recommend", "report")


def main() -> None:
    """The ``initbench`` console script: signals first, then the CLI."""
    install()
    try:
        if sys.argv[1:2] and sys.argv[1] in COMPUTING and "--help" not in sys.argv:
            with deferred():
                import numpy  # noqa: F401
                import torch  # noqa: F401
        # Imported after install(), so an interrupt while the CLI's modules load is handled too.
        from initbench.cli.app import app, usable_terminal

        usable_terminal()  # here too: --help never reaches a command
        app(prog_name="initbench")
    except KeyboardInterrupt as interrupt:  # before or after a command's own handling
        sys.exit(exit_code(interrupt))
    except SystemExit as ending:
        # typer turns an interrupt outside a command (while parsing) into exit code 130.
        if ending.code == 128 + signal.SIGINT and signals.received is not None:
            sys.exit(128 + signals.received)
        raise

