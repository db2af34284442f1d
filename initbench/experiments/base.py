"""The experiments' contract and registry: :data:`EXPERIMENTS`, what an experiment returns
(:class:`ExperimentResult`) and what it runs with (:class:`RunContext`).

An experiment takes a validated :class:`~initbench.config.run.Config` and returns an
:class:`ExperimentResult`: data only, its tables, a JSON summary and the other data files. It
never writes files itself (:mod:`initbench.runs.rundir` does), and it draws no figure and writes
no prose: :mod:`initbench.outputs.run_report` builds every figure, summary.md and terminal table
from the files a run saved, so a run and ``initbench report`` cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from initbench.core.interfaces import Progress, Table
from initbench.core.registry import Registry
from initbench.engines.base import Run

if TYPE_CHECKING:
    import torch

    from initbench.config.run import Config


@dataclass
class ExperimentResult:
    """The data a run produced, in memory, for the run directory to write."""

    tables: dict[str, Table]  # file name -> table, e.g. "layer_stats.csv"
    summary: dict[str, Any] | None  # summary.json (None: the experiment writes none)
    json_files: dict[str, Any] = field(default_factory=dict)  # other JSON files by name, e.g. "training.json"
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
    schemes, bias = config.resolved_init()
    return [
        Run(label=label, seed=seed, scheme=scheme, bias=bias if config.model.bias else None)
        for label, scheme in schemes
        for seed in config.seed_list()
    ]
