"""Runs one experiment end to end: config → checks → run directory → experiment → files."""

from __future__ import annotations

from pathlib import Path

from initbench.config import Config
from initbench.engine import resolve_device, resolve_dtype
from initbench.experiments import EXPERIMENTS, ExperimentResult, Progress, RunContext, load_experiments
from initbench.rundir import RESULTS_ROOT, RunDirectory, command_line


def execute(config: Config, out: Path | None, progress: Progress, root: Path = RESULTS_ROOT) -> tuple[RunDirectory, ExperimentResult]:
    """Run ``config``'s experiment and write its run directory.

    Everything that can be checked is checked before the directory is made (the experiment's name,
    the device, the memory estimate), so a refused run leaves nothing behind. A run that is then
    interrupted or fails still leaves a directory whose ``meta.json`` says so.
    """
    load_experiments()
    experiment = EXPERIMENTS.get(config.experiment)()
    device = resolve_device(config.device)
    experiment.check(config, device)
    directory = RunDirectory.create(out, config.name, root)
    # Modules run in train mode as built (BatchNorm on the batch's statistics, dropout on) unless model.eval.
    directory.begin(config.to_yaml(), str(device), config.dtype, command_line(), {"mode": "eval" if config.model.eval else "train"})
    context = RunContext(config=config, device=device, dtype=resolve_dtype(config.dtype), progress=progress)
    with directory.recording():
        result = experiment.run(context)
        directory.save(result, title=f"initbench {config.experiment}: {config.name}")
    return directory, result
