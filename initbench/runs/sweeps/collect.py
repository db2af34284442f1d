"""Collecting a sweep: every finished point's results in one table (``initbench report`` writes it:
:mod:`initbench.outputs.reporter`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from initbench.runs.jsonio import read_json
from initbench.runs.sweepdir import SweepDirectory
from initbench.runs.sweeps.grid import Axis, Point, Sweep, value_text
from initbench.runs.sweeps.launch import point_status

#: Report columns read from each point's resolved config, before the other swept keys.
CONFIG_COLUMNS = ("experiment", "activation", "depth", "width", "seeds")
#: Axes that these columns (or the scheme column) already show.
SHOWN_AXES = {"experiment", "seeds", "model.activation", "model.depth", "model.width", "model.hidden", "init.scheme", "init.schemes"}
PROPAGATION_METRICS = ("std_first", "std_last", "theory_std_last", "chi1", "phase", "verdict", "first_nonfinite_layer")
GRADIENT_METRICS = ("grad_std_first", "grad_std_last", "grad_ratio", "grad_verdict")
TRAIN_METRICS = ("loss", "train_acc", "test_acc", "steps_to_target", "diverged")


@dataclass
class SweepReport:
    """What a sweep directory holds now: one row per (complete point, scheme), and what is missing."""

    sweep: Sweep
    path: Path
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    missing: list[tuple[Point, str]]  # (point, status) for every point not complete
    metric: str | None  # the column the figures show: std_last, test_acc or loss

    @property
    def complete(self) -> int:
        return len(self.sweep.points) - len(self.missing)


def summary_row(point: Point, label: str, config: dict[str, Any], entry: dict[str, Any], axes: Sequence[Axis]) -> dict[str, Any]:
    """One report row: the point, the scheme, the network, other swept keys, then the results."""
    model = config.get("model", {})
    hidden = model.get("hidden")
    row: dict[str, Any] = {
        "point": point.name,
        "scheme": label,
        "experiment": config.get("experiment"),
        "activation": model.get("activation"),
        "depth": len(hidden) if hidden else model.get("depth"),
        "width": "x".join(map(str, hidden)) if hidden else model.get("width"),
        "seeds": config.get("seeds"),
    }
    row.update({axis.key: value_text(point.values[axis.key]) for axis in axes if axis.key not in SHOWN_AXES})
    theory = entry.get("theory") or {}
    row.update({key: entry.get(key) for key in PROPAGATION_METRICS + GRADIENT_METRICS if key in entry})
    if "std_last" in entry:
        row.update(theory_std_last=theory.get("theory_std_last"), chi1=theory.get("chi1"), phase=theory.get("phase"))
    for key in ("loss", "train_acc", "test_acc"):
        if key in entry:
            row[key] = entry[key]["median"]
    if "diverged" in entry:
        row.update(steps_to_target=entry.get("steps_to_target"), diverged=entry["diverged"])
    return row


def collect(path: Path) -> SweepReport:
    """Read the sweep in ``path``: every complete point's config and summary, and the missing points."""
    sweep = Sweep.load(path)
    directory = SweepDirectory(path)
    rows: list[dict[str, Any]] = []
    missing: list[tuple[Point, str]] = []
    for point in sweep.points:
        status = point_status(directory, point.name)
        if status != "complete":
            missing.append((point, status))
            continue
        folder = directory.point_path(point.name)
        try:
            config = yaml.safe_load((folder / "config.yaml").read_text())
            summary = read_json(folder / "summary.json") if (folder / "summary.json").exists() else {}  # phase writes none
        except (OSError, ValueError, yaml.YAMLError):
            missing.append((point, "unreadable"))
            continue
        rows += [summary_row(point, label, config, entry, sweep.axes) for label, entry in summary.get("schemes", {}).items()]
    leading = ("point", "scheme", *CONFIG_COLUMNS, *(axis.key for axis in sweep.axes if axis.key not in SHOWN_AXES))
    results = [key for key in PROPAGATION_METRICS + GRADIENT_METRICS + TRAIN_METRICS if any(key in row for row in rows)]
    metric = next((key for key in ("std_last", "test_acc", "loss") if any(isinstance(row.get(key), (int, float)) for row in rows)), None)
    return SweepReport(sweep, path, (*leading, *results), rows, missing, metric)


def result_columns() -> set[str]:
    return set(PROPAGATION_METRICS + GRADIENT_METRICS + TRAIN_METRICS)


def varying(rows: Sequence[dict[str, Any]], columns: Iterable[str]) -> list[str]:
    """The columns that take more than one value over ``rows``."""
    return [column for column in columns if len({value_text(row.get(column)) for row in rows}) > 1]


def series_label(row: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(
        f"{value_text(row.get(key))}" if key in ("scheme", "activation") else f"{key}={value_text(row.get(key))}" for key in keys
    )
