"""The terminal: stdout and stderr consoles, and the rich progress bar (a no-op under ``--quiet``
or when stdout is not a terminal).
"""

from __future__ import annotations

import datetime
from typing import Any

from rich.console import Console
from rich.text import Text

stdout = Console()


stderr = Console(stderr=True)


class ProgressBar:
    """One bar of a :class:`RichProgress`, a :class:`~initbench.core.interfaces.Progress`: ``start``
    replaces its task with a new one, ``advance`` and ``update`` move it."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total, latest="")

    def advance(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)

    def update(self, **fields: float) -> None:
        # Deferred for start-up time: loads rich.
        from initbench.render.formatting import format_number

        latest = ", ".join(f"{name} {format_number(value, compact=True)}" for name, value in fields.items())
        self._progress.update(self._task, latest=f"median over runs: {latest}" if latest else "")


class RichProgress(ProgressBar):
    """Rich progress bars on stderr, in 80 columns: steps done, rate and time left on a bar's
    line; time elapsed and the latest numbers an experiment reports (a training run's median loss
    and accuracy) on a line below it. Itself the experiment's bar; :meth:`bar` adds one that a
    longer job (a sweep's points) keeps above it.

    The bars are cleared when the work ends (``transient``), so what is printed next starts on a
    line of its own, and lines printed while they run go above them.
    """

    def __init__(self, console: Console | None = None) -> None:
        # Deferred for start-up time: loads rich.
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class RateColumn(ProgressColumn):
            """Steps per second, over rich's recent window."""

            def render(self, task: Task) -> Text:
                speed = task.finished_speed or task.speed
                return Text("– it/s" if speed is None else f"{speed:.3g} it/s", style="progress.data.speed")

        class TwoLineProgress(Progress):
            def get_renderables(self):  # type: ignore[no-untyped-def]
                yield self.make_tasks_table(self.tasks)
                for task in self.tasks:
                    elapsed = datetime.timedelta(seconds=int(task.elapsed or 0))
                    latest = task.fields.get("latest")
                    yield Text(f"  {task.description}: {elapsed} elapsed" + (f"; {latest}" if latest else ""), style="dim", overflow="ellipsis", no_wrap=True)

        super().__init__(
            TwoLineProgress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                RateColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console or stderr,
                transient=True,
            )
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def bar(self) -> ProgressBar:
        """Another bar, shown in the order bars are first started."""
        return ProgressBar(self._progress)
