"""initbench: a command-line experiment runner for neural-network weight initialization.

The Python API (:mod:`initbench.api`) is importable from here, loaded on first use so that
``import initbench`` stays light (no torch, no matplotlib):

    from initbench import run, compare, probe, load

(``initbench.api.report`` writes a directory's report: ``initbench.render.formatting`` is the module of table
formatting, so the function is not exported here.)
"""

from __future__ import annotations

from initbench._version import __version__

TYPE_CHECKING = False  # not typing's: importing typing would double this module's import time
if TYPE_CHECKING:
    from initbench.api import RunResult, compare, load, probe, run

__all__ = ["RunResult", "__version__", "compare", "load", "probe", "run"]
API = ("RunResult", "compare", "load", "probe", "run")


def __getattr__(name: str) -> object:
    if name in API:
        # Deferred for start-up time: `import initbench` loads no dependency until the API is used.
        from initbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'initbench' has no attribute {name!r}")
