"""The run lifecycle, the one every command uses: claim → begin → run → save → finish.

1. **claim and begin**, one atomic step (:meth:`RunDirectory.claim`): the directory appears
   holding the resolved ``config.yaml`` and a ``running`` meta.json, or not at all;
2. **run** the experiment and **save** what it returned, inside :func:`recorded`;
3. **finish**: meta.json ends ``complete``, ``interrupted`` (Ctrl-C or SIGTERM) or ``failed``,
   whatever happened, even if recording the failure itself fails.

``initbench run`` and ``compare`` (:func:`execute`), ``--resume`` (:func:`resume`), every sweep
point (:mod:`initbench.runs.sweeps.launch`) and ``initbench report`` go through it. Training runs keep
a checkpoint in their directory while they run (:class:`DirectoryResumeStore`), which is how a
resumed run continues where it stopped.

Saving is two steps: the experiment's data (tables, summary.json, data files), then a
:data:`Renderer` that reads the directory back and writes its figures and summary.md into it.
The renderer is :func:`initbench.outputs.run_report.render_into`, handed in by the command (the
CLI or the API) because the outputs sit above the runs. It is called here, inside the lifecycle,
not by the command after the run returns, for two reasons: a directory is ``complete`` only once
its figures are there too (a sweep skips complete points, so a point left without figures would
stay so), and a sweep's points are run here, on a cluster's machines too, where no command
waits for them.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

from initbench.config.loading import validate_config
from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import Progress
from initbench.core.runtime import resolve_device, resolve_dtype
from initbench.experiments.base import EXPERIMENTS, ExperimentResult, RunContext
from initbench.runs.results import RunResult, damaged
from initbench.runs.rundir import RESULTS_ROOT, RunDirectory, command_line, opening_meta

T = TypeVar("T")

CHECKPOINT = "checkpoint.pt"
#: What ``torch.load`` raises on foreign, cut or altered bytes (its zip reader, its unpickler, the tensors' storage).
TORCH_LOAD_FAILURES = (pickle.UnpicklingError, RuntimeError, ValueError, LookupError, EOFError, OSError)

#: Writes a saved run directory's figures and summary.md from its files, and returns what the
#: terminal shows for it (rich renderables).
Renderer = Callable[[RunDirectory], list[Any]]


class DirectoryResumeStore:
    """An experiment's saved progress, kept atomically in its run directory as ``checkpoint.pt``."""

    def __init__(self, directory: RunDirectory) -> None:
        self.directory = directory

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.directory.write_bytes(CHECKPOINT, buffer.getvalue())

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None if the run saved none; :class:`DamagedFileError` where
        ``checkpoint.pt`` holds no state dict."""
        data = self.directory.read_bytes(CHECKPOINT)
        if data is None:
            return None
        try:
            state = torch.load(io.BytesIO(data), weights_only=True)
        except TORCH_LOAD_FAILURES as error:
            raise damaged(self.directory.path / CHECKPOINT, f"torch.load cannot read it ({type(error).__name__})") from None
        if not isinstance(state, dict):
            raise damaged(self.directory.path / CHECKPOINT, f"it holds a {type(state).__name__}, not a state dict")
        return state


@contextmanager
def recorded(directories: Sequence[RunDirectory]) -> Iterator[None]:
    """Finish every directory the block leaves unfinished: ``complete`` if it ended normally,
    else ``interrupted`` or ``failed`` with its error, which still propagates.

    A block that finishes directories itself (a sweep stack, point by point) is covered too: an
    interrupt or failure between two points leaves none of them ``running``.
    """
    try:
        yield
    except KeyboardInterrupt:
        for directory in directories:
            if not directory.finished:
                directory.finish("interrupted")
        raise
    except BaseException as error:
        for directory in directories:
            if not directory.finished:
                directory.finish("failed", error=f"{type(error).__name__}: {error}")
        raise
    for directory in directories:
        if not directory.finished:
            directory.finish("complete")


def run_and_save(directory: RunDirectory, work: Callable[[], T], save: Callable[[T], None], render: Renderer) -> list[Any]:
    """Steps 2 and 3 for one claimed directory: ``save(work())``, ``render`` the saved files, then
    finish with the status. Returns what the terminal shows for the run."""
    with recorded([directory]):
        save(work())
        shown = render(directory)
        directory.remove(CHECKPOINT)
    return shown


def begin(config: Config, out: Path | None, device: str, root: Path = RESULTS_ROOT) -> RunDirectory:
    """Step 1 for a run: claim ``out`` (or a fresh directory) holding the config and a running meta.json."""
    return RunDirectory.create(out, config.name, config.to_yaml(), opening_meta(device, config.dtype, command_line(), run_mode(config)), root)


def run_mode(config: Config) -> dict[str, str]:
    """meta.json's ``mode``: modules run in train mode as built (BatchNorm on the batch's statistics,
    dropout on) unless ``model.eval``."""
    return {"mode": "eval" if config.model.eval else "train"}


def prepare(config: Config) -> tuple[Any, Any]:
    """The experiment and device for ``config``, checked (name, device, memory) before anything is written."""
    experiment = EXPERIMENTS.get(config.experiment)()
    device = resolve_device(config.device)
    experiment.check(config, device)
    for _, scheme in config.resolved_init()[0]:
        scheme.check_inputs()
    return experiment, device


def run_in(directory: RunDirectory, config: Config, experiment: Any, device: Any, progress: Progress, render: Renderer) -> list[Any]:
    context = RunContext(
        config=config, device=device, dtype=resolve_dtype(config.dtype), progress=progress, checkpoint=DirectoryResumeStore(directory)
    )
    return run_and_save(directory, lambda: experiment.run(context), directory.save, render)


def checkpointed(path: Path) -> RunResult | None:
    """An unfinished run's data rebuilt from the checkpoint it left (the evaluations a training run
    saved), read as its files would be; None when it left none, or its experiment keeps no checkpoint."""
    directory = RunDirectory(path)
    state = DirectoryResumeStore(directory).load()
    if state is None:
        return None
    result = RunResult.load(path)
    config = validate_config(result.config, str(path / RunDirectory.CONFIG))
    experiment = EXPERIMENTS.get(config.experiment)()
    if not hasattr(experiment, "from_checkpoint"):
        return None
    try:
        rebuilt = experiment.from_checkpoint(config, state)
    except (KeyError, IndexError, TypeError, ValueError) as error:  # a state dict, but not the one this run saves
        raise damaged(path / CHECKPOINT, f"it does not hold this {config.experiment} run's progress ({type(error).__name__}: {error})") from None
    return RunResult.of(path, result.config, result.meta, rebuilt)


def run_detached(experiment: Any, config: Config, progress: Progress) -> ExperimentResult:
    """Run ``experiment`` with no directory, for a command that prints its result (``initbench gain``)."""
    device = resolve_device(config.device)
    experiment.check(config, device)
    return experiment.run(RunContext(config=config, device=device, dtype=resolve_dtype(config.dtype), progress=progress))


def execute(config: Config, out: Path | None, progress: Progress, render: Renderer, root: Path = RESULTS_ROOT) -> tuple[RunDirectory, list[Any]]:
    """Run ``config``'s experiment and write its run directory; returns it and what the terminal shows.

    Everything that can be checked is checked before the directory is claimed (the experiment's
    name, the device, the memory estimate), so a refused run leaves nothing behind.
    """
    experiment, device = prepare(config)
    directory = begin(config, out, str(device), root)
    return directory, run_in(directory, config, experiment, device, progress, render)


def resume(path: Path, progress: Progress, render: Renderer) -> tuple[RunDirectory, list[Any]]:
    """Run an interrupted or failed run again in its own directory, from its checkpoint if it left one.

    The config is the one the directory recorded; a training run continues from its last
    evaluation, and ends with the numbers an uninterrupted run gives.
    """
    if not path.is_dir():
        raise InitbenchError(f"--resume {path}: the run directory does not exist.")

    directory, config_text = RunDirectory.reopen(path, command_line())
    try:
        config = validate_config(yaml.safe_load(config_text) or {}, str(path / RunDirectory.CONFIG))
        experiment, device = prepare(config)
    except BaseException as error:  # this attempt ended before it ran: say so, as any other would
        if isinstance(error, InitbenchError):  # refused (a file the run needs is gone): the run stays as it was, resumable
            previous = directory.meta["attempts"][-1]["status"]
            status = previous if previous in ("interrupted", "failed") else "interrupted"  # never "running" once it has ended
        else:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        directory.finish(status, error=f"{type(error).__name__}: {error}")
        raise
    return directory, run_in(directory, config, experiment, device, progress, render)
