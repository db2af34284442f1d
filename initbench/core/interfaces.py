"""The small interfaces that every layer shares: where progress is reported (:class:`Progress`)
and a table in long format (:class:`Table`), the CSV writer's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Progress(Protocol):
    """Where an experiment reports progress: ``start`` a task of ``total`` steps, ``advance`` it,
    and ``update`` the latest numbers shown beside it (a training run's loss and accuracy)."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...

    def update(self, **fields: float) -> None: ...


class SilentProgress:
    """A progress reporter that reports nothing (``--quiet``, tests, non-terminals)."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def update(self, **fields: float) -> None:
        pass


@dataclass(frozen=True)
class Table:
    """A table in long format: the CSV writer's input."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
