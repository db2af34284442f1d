"""The experiments' contract and registry: :data:`EXPERIMENTS`, what an experiment returns
(:class:`ExperimentResult`) and what it runs with (:class:`RunContext`).

An experiment takes a validated :class:`~initbench.config.run.Config` and returns an
:class:`ExperimentResult`: tables, a JSON summary, figures and a Markdown report. It never writes
files itself; :mod:`initbench.runs.rundir` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from initbench.core.interfaces import Progress, Table
from initbench.core.registry import Registry

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from rich.console import RenderableType

    from initbench.config.run import Config
    from initbench.engines.base import Run


@dataclass
class ExperimentResult:
    """Everything a run produced, in memory, for the run directory to write."""

    tables: dict[str, Table]  # file name -> table, e.g. "layer_stats.csv"
    summary: dict[str, Any] | None  # summary.json (None: the experiment writes none)
    figures: dict[str, Figure] = field(default_factory=dict)  # file name -> figure
    report: str | None = ""  # the Markdown body of summary.md (None: no summary.md)
    console_tables: list[RenderableType] = field(default_factory=list)  # shown at the end of the run
    files: dict[str, bytes] = field(default_factory=dict)  # other files by relative path, e.g. "models/he-seed0.pt"


class ResumeStore(Protocol):
    """Where a long experiment keeps the state it resumes from (its checkpoint): ``save`` a state,
    ``load`` the last one (None: none)."""

    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class RunContext:
    """What an experiment runs with: the config, resolved device and dtype, a progress sink, and
    where to keep a checkpoint (None: the run cannot be resumed, as a sweep's stacked pass)."""

    config: Config
    device: torch.device
    dtype: torch.dtype
    progress: Progress
    checkpoint: ResumeStore | None = None


class Experiment(Protocol):
    """An experiment: checks a config before anything is allocated, then runs it."""

    def check(self, config: Config, device: torch.device) -> None:
        """Raise :class:`~initbench.core.errors.InitbenchError` for a config it cannot run (memory, shapes)."""
        ...

    def run(self, context: RunContext) -> ExperimentResult: ...


class Record(Protocol):
    """What a stacked pass measured for its runs, splittable by scheme label."""

    def subset(self, labels: list[str]) -> Record:
        """The runs of ``labels`` only: what measuring them alone records."""
        ...


@runtime_checkable
class StackableExperiment(Experiment, Protocol):
    """An experiment whose runs of several configs that differ only in ``init`` can share one pass:
    :meth:`measure` all their runs together, then :meth:`analyse` each config's subset. Sweeps
    stack their points through this."""

    def measure(self, context: RunContext, runs: list[Run]) -> Record: ...

    def analyse(self, config: Config, record: Any) -> ExperimentResult: ...


EXPERIMENTS: Registry[type[Experiment]] = Registry("experiment")


def build_runs(config: Config) -> list[Run]:
    """One run per (scheme, seed), schemes first, with options like ``gain: auto`` resolved (once, by the config)."""
    from initbench.engines.base import Run

    schemes, bias = config.resolved_init()
    return [
        Run(label=label, seed=seed, scheme=scheme, bias=bias if config.model.bias else None)
        for label, scheme in schemes
        for seed in config.seed_list()
    ]
