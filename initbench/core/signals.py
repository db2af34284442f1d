"""SIGINT and SIGTERM, handled alike: both stop a run the same way, as an :class:`Interrupted`.

SIGTERM is what ``timeout``, ``docker stop`` and SLURM send; left to Python's default it kills the
process on the spot, with ``meta.json`` still saying ``running``. Here both signals raise
:class:`Interrupted` (a ``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` treats them
alike): the run directory records ``interrupted`` and the process exits with 128 + the signal's
number, 130 for SIGINT and 143 for SIGTERM, as a shell reports a process the signal killed.

This module imports nothing heavy: :func:`main` installs the handlers before the CLI (typer, rich,
torch) is imported, so an early Ctrl-C exits quietly instead of printing an import traceback.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)

#: The last handled signal this process received (None: none yet).
received: int | None = None
_deferring = 0
_pending: int | None = None


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM; ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM: what a shell shows for a process stopped by that signal."""
    return interrupt.exit_code if isinstance(interrupt, Interrupted) else 128 + signal.SIGINT


def _handle(signum: int, frame: FrameType | None) -> None:
    global received, _pending
    received = signum
    if _deferring:
        _pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in the main thread."""
    for signum in HANDLED:
        signal.signal(signum, _handle)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while recording how a run ended, then act on them.

    A second Ctrl-C while ``meta.json`` is being written would otherwise stop the write that says
    the run was interrupted, and leave ``running``.
    """
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        pending, _pending = (_pending, None) if not _deferring else (None, _pending)
    if pending is not None:
        raise Interrupted(pending)
