"""Training figures: loss and accuracy curves over steps (median and band over seeds, divergences
marked), and a 2-D task's decision boundaries."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from initbench.render.figures.style import (
    color,
    draw_median_and_band,
    linestyle,
    seed_legend_entries,
)
from initbench.render.formatting import format_number, reached_text


def seed_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max over seeds (axis 0) of ``[seeds, steps]``, ignoring NaN (after a run diverged)."""
    with warnings.catch_warnings():  # steps where every seed has diverged are all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def mark_divergences(axes: Axes, values: np.ndarray, diverged_at_step: Sequence[int | None] | None, colour: str) -> bool:
    """✕ at the step where each seed diverged, on its last recorded value; whether any was drawn."""
    marked = False
    for seed, step in enumerate(diverged_at_step or []):
        recorded = np.flatnonzero(np.isfinite(values[seed]))
        if step is None or not recorded.size:
            continue
        marked = True
        axes.plot([step], [values[seed, recorded[-1]]], "X", color=colour, mec="black", ms=9, zorder=5)
    return marked


def draw_training_curves(
    axes: Axes, steps: np.ndarray, curves: dict[str, dict[str, np.ndarray]], metric: str, schemes: dict[str, dict[str, Any]]
) -> tuple[list[Line2D], bool]:
    """Each scheme's ``metric`` as a median and band over seeds, with its divergences; returns the
    median lines and whether a divergence was marked."""
    lines = []
    diverged = False
    for index, (label, per_label) in enumerate(curves.items()):
        values = per_label[metric]
        median, low, high = seed_spread(values)
        lines.append(draw_median_and_band(axes, steps, median, low, high, values.shape[0], color=color(index), ls=linestyle(index), lw=2))
        diverged = mark_divergences(axes, values, schemes.get(label, {}).get("diverged_at_step"), color(index)) or diverged
    return lines, diverged


def label_training_axes(axes: Axes, metric: str, chance: float | None, target: float | None) -> None:
    """A log scale for the loss; for accuracy a 0–1 frame with the chance (dotted) and target (dashed) lines."""
    if metric == "loss":
        axes.set_yscale("log")
        axes.set_ylabel("training loss (whole training set)")
    else:
        axes.set_ylabel("test accuracy")
        axes.set_ylim(-0.02, 1.02)
        if chance is not None:
            axes.axhline(chance, color="0.35", ls=":", lw=1.5)
        if target is not None:
            axes.axhline(target, color="0.35", ls="--", lw=1)
    axes.set_xlabel("step")
    axes.grid(True, alpha=0.3)


def training_legend_entries(
    lines: list[Line2D],
    curves: dict[str, dict[str, np.ndarray]],
    schemes: dict[str, dict[str, Any]],
    accuracy: bool,
    diverged: bool,
    chance: float | None,
    target: float | None,
) -> tuple[list[Any], list[str]]:
    """One entry per scheme (with "k of n reached" where a target was set), then the key: median
    and band, divergence marks, and with an accuracy panel the chance and target lines."""
    handles: list[Any] = list(lines)
    names = []
    for label in curves:
        reached = schemes.get(label, {}).get("steps_to_target_per_seed")
        names.append(label if reached is None else f"{label}: {reached_text(reached)}")
    seed_handles, seed_names = seed_legend_entries({values.shape[0] for per_label in curves.values() for values in per_label.values()})
    handles, names = handles + seed_handles, names + seed_names
    if diverged:
        handles.append(Line2D([], [], color="0.5", marker="X", mec="black", ls="none", ms=9))
        names.append("a seed diverged (at that step; its curve ends)")
    if accuracy and chance is not None:
        handles.append(Line2D([], [], color="0.35", ls=":", lw=1.5))
        names.append(f"chance (most frequent class): {format_number(chance)}")
    if accuracy and target is not None:
        handles.append(Line2D([], [], color="0.35", ls="--", lw=1))
        names.append(f"target test accuracy {format_number(target)}")
    return handles, names


def training_curves_figure(
    steps: np.ndarray,
    curves: dict[str, dict[str, np.ndarray]],
    title: str,
    schemes: dict[str, dict[str, Any]] | None = None,
    chance: float | None = None,
) -> Figure:
    """Training loss (log scale) and, for classification, test accuracy against step.

    Args:
        steps: the evaluation steps.
        curves: label → metric ("loss", "test_acc") → ``[seeds, len(steps)]`` (NaN after a run diverged).
        schemes: ``summary.json``'s per-scheme entries: ``diverged_at_step`` (✕ where a seed
            diverged, on its last recorded value), ``target_accuracy`` and ``steps_to_target_per_seed``
            (a dashed target line, and "k of n reached, median step" in the legend).
        chance: the accuracy of always predicting the most frequent class, drawn dotted.

    Median over seeds as a line, min–max as a band, as in :func:`std_by_layer_figure`; one legend.
    """
    schemes = schemes or {}
    metrics = [metric for metric in ("loss", "test_acc") if any(metric in per_label for per_label in curves.values())]
    figure = Figure(figsize=(5.5 * len(metrics) + 3.5, 4.6), layout="constrained")
    grid = figure.subplots(1, len(metrics), squeeze=False)[0]
    target = next((entry["target_accuracy"] for entry in schemes.values() if entry.get("target_accuracy") is not None), None)
    first_lines: list[Line2D] = []
    diverged_any = False
    for axes, metric in zip(grid, metrics, strict=True):
        lines, diverged = draw_training_curves(axes, steps, curves, metric, schemes)
        if axes is grid[0]:  # the legend names the first panel's lines
            first_lines = lines
        diverged_any = diverged_any or diverged
        label_training_axes(axes, metric, chance, target)
    legend = training_legend_entries(first_lines, curves, schemes, "test_acc" in metrics, diverged_any, chance, target)
    figure.legend(*legend, loc="outside right upper", fontsize=8)
    figure.suptitle(title)
    return figure


def decision_boundary_figure(
    points: np.ndarray, labels: np.ndarray, grid_x: np.ndarray, grid_y: np.ndarray, regions: dict[str, np.ndarray], title: str
) -> Figure:
    """One panel per scheme: the predicted class over a grid, with the training points on top.

    Args:
        points, labels: training inputs ``[n, 2]`` and their classes.
        grid_x, grid_y: the mesh (``numpy.meshgrid`` output).
        regions: panel title → predicted class per mesh point, shaped like ``grid_x``.
    """
    figure = Figure(figsize=(4.2 * len(regions), 4.8), layout="constrained")
    grid = figure.subplots(1, len(regions), squeeze=False)[0]
    classes = int(max(labels.max(), max(int(region.max()) for region in regions.values()))) + 1
    cmap = colormaps["coolwarm" if classes == 2 else "tab10"]
    norm = Normalize(-0.5, classes - 0.5) if classes == 2 else Normalize(0, 9)  # tab10: class k is colour k
    for axes, (label, region) in zip(grid, regions.items(), strict=True):
        axes.contourf(grid_x, grid_y, region, levels=np.arange(classes + 1) - 0.5, cmap=cmap, norm=norm, alpha=0.35)
        axes.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, norm=norm, s=10, edgecolors="black", linewidths=0.3)
        axes.set_title(label, fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
    handles = [Line2D([], [], marker="o", ls="none", color=cmap(norm(k)), mec="black", mew=0.3, label=f"class {k}") for k in range(classes)]
    handles.append(Patch(facecolor="0.6", alpha=0.35, label="shading: the predicted class"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8)
    figure.suptitle(title)
    return figure
