"""The Python API, for notebooks and scripts: ``initbench run``, ``compare`` and ``probe`` as functions.

    from initbench import compare
    result = compare(["xavier", "he"], activation="tanh", depth=50, width=128, seeds=3)
    result.schemes["he"]["verdict"]     # summary.json's entry, non-finite numbers as float("nan")
    result.layer_stats[:3]              # layer_stats.csv's rows, as dicts of numbers
    result.layer_stats_frame()          # the same as a pandas DataFrame, if pandas is installed

Each function takes its command's arguments (a config path or mapping, ``KEY=VALUE`` overrides,
``out``, ``seeds``, ``device``, ``quiet``, and the command's options as keywords), runs through
the same lifecycle (:func:`initbench.runs.runner.execute`) and writes the same run directory, then
returns that directory read back (:class:`~initbench.runs.results.RunResult`). Bad input raises
:class:`~initbench.core.errors.InitbenchError` (a message and a hint), never ``SystemExit``; nothing is
printed unless ``quiet=False``, which shows the CLI's progress bar and tables.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench.core.errors import InitbenchError
from initbench.core.interfaces import SilentProgress
from initbench.runs.results import RunResult

if TYPE_CHECKING:
    from initbench.config.run import Config

__all__ = ["RunResult", "compare", "load", "probe", "report", "run"]


def run(
    config: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    out: str | Path | None = None,
    seeds: int | None = None,
    device: str | None = None,
    eval_mode: bool = False,
    quiet: bool = True,
) -> RunResult:
    """``initbench run CONFIG [OVERRIDES] [--out] [--seeds] [--device] [--eval]``: the experiment a config describes.

    Args:
        config: a YAML file's path, or the config as a mapping (``{"model": {"depth": 50}, ...}``).
        overrides: ``KEY=VALUE`` strings, as on the command line (``"init.scheme=xavier_normal"``).
        out: the run directory (new or empty); default ``results/<name>-<time>/``.
        seeds, device, eval_mode: as ``--seeds``, ``--device`` and ``--eval``.
        quiet: False shows the progress bar and the result tables.
    """
    # Deferred for start-up time: loads pydantic, rich and torch.
    from initbench.config.loading import build_config
    from initbench.runs.sweeps import check_no_sweep_section

    raw, source = config_mapping(config)
    check_no_sweep_section(raw, Path(source))
    options = {"device": ("device", device), "seeds": ("seeds", seeds), "model.eval": ("model.eval", True if eval_mode else None)}
    return execute_config(build_config(raw, source, as_list(overrides, "overrides"), options), out, quiet)


def compare(
    schemes: str | Sequence[str],
    overrides: Sequence[str] = (),
    *,
    config: str | Path | Mapping[str, Any] | None = None,
    activation: str | None = None,
    depth: int | None = None,
    width: int | None = None,
    batch: int | None = None,
    seeds: int | None = None,
    experiment: str | None = None,
    dataset: str | None = None,
    steps: int | None = None,
    lr: float | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    eval_mode: bool = False,
    quiet: bool = True,
) -> RunResult:
    """``initbench compare SCHEMES...``: one experiment per scheme on the same network.

    Args:
        schemes: scheme specs (``"he"``, ``"normal:std=0.01"``); each labels its run.
        overrides: ``KEY=VALUE`` config overrides, as the command takes (``["model.arch=resmlp"]``).
        config: a base config (path or mapping); default 100 layers × 256 relu units, batch 1024
            (for ``experiment="train"``, the training default).
        activation, depth, width, batch, seeds, experiment: as the command's options; ``depth`` and
            ``width`` replace the base config's ``model.hidden``.
        dataset, steps, lr: ``experiment="train"`` only.
        out, device, eval_mode, quiet: as in :func:`run`.
    """
    # Deferred for start-up time: loads pydantic, rich and torch.
    from initbench.config.loading import compare_config
    from initbench.runs.sweeps import check_no_sweep_section

    labels = as_list(schemes, "schemes")
    if not labels:
        raise InitbenchError("compare() needs at least one scheme.", hint='For example compare(["xavier", "he"]).')
    if lr is not None and not math.isfinite(lr):
        raise InitbenchError(f"lr={lr} is not a finite number.")
    raw: dict[str, Any] | None = None  # None: compare's default net
    source = "compare() arguments"
    if config is not None:
        raw, source = config_mapping(config)
        check_no_sweep_section(raw, Path(source))
    keywords = {
        "model.activation": activation, "model.depth": depth, "model.width": width, "input.batch": batch, "seeds": seeds, "device": device,
        "experiment": experiment, "train.dataset": dataset, "train.steps": steps, "train.lr": lr, "model.eval": True if eval_mode else None,
    }  # fmt: skip
    names = {"train.dataset": "dataset", "train.steps": "steps", "train.lr": "lr", "model.eval": "eval_mode"}
    options = {key: (names.get(key, key.rpartition(".")[2]), value) for key, value in keywords.items()}
    return execute_config(compare_config(raw, source, labels, options, as_list(overrides, "overrides")), out, quiet)


def probe(
    factory: str,
    overrides: Sequence[str] = (),
    *,
    input_shape: Sequence[int] | None = None,
    tokens: int | None = None,
    schemes: str | Sequence[str] | None = None,
    experiment: str = "forward",
    seeds: int | None = None,
    device: str | None = None,
    eval_mode: bool = False,
    out: str | Path | None = None,
    quiet: bool = True,
) -> RunResult:
    """``initbench probe FACTORY``: per-module output statistics of your own model at init.

    Args:
        factory: ``package.module:callable`` returning an ``nn.Module``.
        overrides: ``KEY=VALUE`` strings, e.g. ``"model.kwargs.d_model=64"``.
        input_shape: the input's shape, batch first, e.g. ``(8, 16, 64)``.
        tokens: feed integer tokens in ``[0, tokens)`` instead of N(0, 1) floats.
        schemes: redraw every weight with these schemes; default the model's own init.
        experiment: ``"forward"`` or ``"gradients"``.
        seeds, device, eval_mode, out, quiet: as in :func:`run`.
    """
    # Deferred for start-up time: loads pydantic and torch.
    from initbench.config.loading import probe_config

    if experiment not in ("forward", "gradients"):
        raise InitbenchError(f"experiment={experiment!r}: probe runs forward or gradients.")
    chosen = as_list(schemes, "schemes") if schemes is not None else []
    shape = None if input_shape is None else list(input_shape)
    if shape is not None and (not shape or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in shape)):
        raise InitbenchError(f"input_shape={input_shape!r}: give positive integer sizes, batch first, e.g. (8, 16, 64).")
    # Errors name the config keys these set, as they always have for probe().
    keys = {"input.tokens": tokens, "seeds": seeds, "device": device, "model.eval": True if eval_mode else None}
    options = {key: (key, value) for key, value in keys.items()}
    return execute_config(probe_config(factory, experiment, chosen, shape, options, as_list(overrides, "overrides")), out, quiet)


def load(path: str | Path) -> RunResult:
    """A run directory already written (by the CLI or by this API), read back."""
    # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
    from initbench.outputs.reporter import REPORT_OF

    result = RunResult.load(path)
    if REPORT_OF in result.config:
        raise InitbenchError(f"{path} is a report (of {result.config[REPORT_OF]}), not a run.", hint=f"Load the run itself: initbench.load({str(result.config[REPORT_OF])!r}).")
    return result


def report(path: str | Path, out: str | Path | None = None) -> Path:
    """``initbench report DIR``: rebuild a run or sweep directory's report; returns the report folder."""
    # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
    from initbench.outputs.reporter import report_directory

    return report_directory(Path(path), None if out is None else Path(out)).directory.path


def as_list(values: str | Sequence[str], name: str) -> list[str]:
    """A single string is one item (not its characters); anything else must be a sequence of strings."""
    if isinstance(values, str):
        return [values]
    if not isinstance(values, Sequence) or not all(isinstance(value, str) for value in values):
        raise InitbenchError(f"{name} must be a string or a list of strings, not {values!r}.")
    return list(values)


def config_mapping(config: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The raw config (read from a file, or a copy of the mapping) and the name errors give it."""
    # Deferred for start-up time: loads pydantic and torch.
    from initbench.config.loading import read_yaml

    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config)), "(config mapping)"
    if isinstance(config, (str, Path)):
        return read_yaml(Path(config)), str(config)
    raise InitbenchError(f"config must be a path or a mapping, not {type(config).__name__}.")


def execute_config(config: Config, out: str | Path | None, quiet: bool) -> RunResult:
    """Run ``config`` into its run directory (as the CLI does), then read the directory back."""
    # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
    from initbench.outputs.run_report import render_into
    from initbench.runs.runner import execute

    target = None if out is None else Path(out)
    if quiet:
        directory, _ = execute(config, target, SilentProgress(), render_into)
    else:
        # Deferred for start-up time: loads rich.
        from initbench.outputs.console import RichProgress, stdout

        with RichProgress() as progress:
            directory, shown = execute(config, target, progress, render_into)
        for table in shown:
            stdout.print(table)
    return RunResult.load(directory.path)
