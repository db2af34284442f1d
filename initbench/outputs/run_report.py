"""The one reporter of a run directory: every figure, summary.md and terminal table of a run,
built from its saved files only.

It serves both ends. Right after a run has saved its data, the run lifecycle calls
:func:`render_into` (the :data:`initbench.runs.runner.Renderer` the CLI and the API hand it),
which writes the figures and summary.md into the run directory itself; ``initbench report``
(:mod:`initbench.outputs.reporter`) builds the same :class:`Report` and writes it into its own
folder, with report.md and report.html. Both read the same files with the same code, so they
write the same bytes, and neither depends on what the run held in memory.

An unfinished training run has no tables yet; its report is built from the evaluations its
checkpoint saved (:func:`initbench.runs.runner.checkpointed`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from initbench.core.errors import InitbenchError
from initbench.experiments.train import TRAINING_FILE
from initbench.outputs.document import Report
from initbench.outputs.parts.common import Saved
from initbench.outputs.parts.propagation import propagation_part
from initbench.outputs.parts.tools import gain_part, phase_part, recommend_part
from initbench.outputs.parts.training import train_part
from initbench.runs.results import DamagedFileError, RunResult
from initbench.runs.rundir import RunDirectory
from initbench.runs.runner import CHECKPOINT, checkpointed

PARTS: dict[str, Callable[[Saved, Report], None]] = {
    "forward": propagation_part, "gradients": propagation_part, "all": propagation_part,
    "train": train_part, "gain": gain_part, "phase": phase_part, "recommend": recommend_part,
}  # fmt: skip


def experiment_of(result: RunResult) -> str:
    """The experiment a directory reports: recommend's directory holds the forward config of its
    rules, and its summary says what it is."""
    return "recommend" if (result.summary or {}).get("experiment") == "recommend" else result.experiment


def run_report(result: RunResult) -> Report:
    """The report of one run directory's saved files, by its experiment."""
    experiment = experiment_of(result)
    if experiment not in PARTS:
        raise InitbenchError(f"{result.path}: no report for experiment '{experiment}'.", hint=f"Reports cover: {', '.join(PARTS)}.")
    status = result.status
    report = Report(
        title=f"initbench {experiment}: {result.config.get('name', result.path.name)}",
        subtitle=f"Directory {result.path} (status {status}); rebuilt from its files by initbench report.",
        config_text=(result.path / RunDirectory.CONFIG).read_text(encoding="utf-8") if (result.path / RunDirectory.CONFIG).is_file() else "",
        environment=result.meta,
    )
    if status != "complete":
        report.notes.append(f"This run is {status}, not complete: its files may hold only part of the results, or none.")
    PARTS[experiment](Saved.of(result), report)
    return report


def directory_report(path: Path) -> Report:
    """The report of the run directory ``path`` for ``initbench report``. An unfinished run that
    left no tables but a checkpoint reports the data its checkpoint holds (a training run's
    evaluations so far), and says so."""
    result = RunResult.load(path)
    if result.status != "complete" and not result.tables and (path / CHECKPOINT).is_file():
        try:
            rebuilt = checkpointed(path)
        except DamagedFileError:
            raise
        except InitbenchError:  # its config no longer reads here (a plugin gone): report what is saved
            rebuilt = None
        if rebuilt is not None:
            report = run_report(rebuilt)
            steps = rebuilt.json_files.get(TRAINING_FILE, {}).get("evaluated_steps") or ["–"]
            report.notes.append(f"It wrote no tables yet: they are rebuilt from the evaluations its {CHECKPOINT} saved, the last at step {steps[-1]}.")
            return report
    return run_report(result)


def render_into(directory: RunDirectory) -> list[Any]:
    """Write a just-saved run's figures and summary.md into its directory, through its atomic
    writers; returns the tables the terminal shows."""
    report = run_report(RunResult.load(directory.path))
    for name, (png, _) in report.figures.items():
        directory.write_bytes(name, png)
    if report.summary_md is not None:
        directory.write_text("summary.md", report.summary_md)
    return report.console


def console_of(result: RunResult) -> list[Any]:
    """What the terminal shows for a run's data that no directory holds (``initbench gain`` without ``--out``)."""
    return run_report(result).console
