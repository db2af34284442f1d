"""The per-layer figure: std (or any statistic) by layer, one curve per scheme, the median over
seeds with its min–max band, theory dashed, and strips marking non-finite and zero layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from initbench.render.figures.style import (
    band,
    color,
    draw_median_and_band,
    figure_with_strips,
    label_strip,
    linestyle,
    log_limits,
    median_line,
    same_curve,
    seed_legend_entries,
)

#: Markers that tell apart curves that lie on top of each other.
DUPLICATE_MARKERS = "osD^v<>"


def duplicate_curves(series: dict[str, np.ndarray]) -> dict[str, str]:
    """Label → the first earlier label whose curve it repeats (:func:`same_curve`)."""
    labels = list(series)
    duplicates: dict[str, str] = {}
    for index, label in enumerate(labels):
        earlier = next((other for other in labels[:index] if same_curve(series[other], series[label])), None)
        if earlier is not None:
            duplicates[label] = earlier
    return duplicates


def layer_curve_style(index: int, labels: list[str], duplicates: dict[str, str], depth: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The line style, markers and legend name of the ``index``-th scheme's curve. One drawn on top
    of an earlier curve gets markers only, offset from other repeats, and a note in its name, so
    the earlier curve stays visible under it."""
    label = labels[index]
    style = {"color": color(index), "ls": linestyle(index)}
    if label not in duplicates:
        return style, {}, label
    repeat = sum(1 for other in labels[:index] if other in duplicates)
    step = max(1, depth // 12)
    symbol = DUPLICATE_MARKERS[repeat % len(DUPLICATE_MARKERS)]
    style["ls"] = "none"
    marker = {"marker": symbol, "markevery": (repeat % step, step), "ms": 7, "mew": 1.5, "mfc": "none"}
    return style, marker, f"{label} (same curve as {duplicates[label]})"


def draw_layer_theory(axes: Axes, layers: np.ndarray, prediction: np.ndarray, median: np.ndarray, colour: str) -> np.ndarray:
    """The prediction dashed in the scheme's colour; returns it where a measurement exists (for the y-range)."""
    predicted = np.asarray(prediction, dtype=float)
    axes.plot(layers, predicted, color=colour, ls="--", lw=1.2)
    return np.where(np.isfinite(median), predicted, np.nan)


def mark_strips(panels: dict[int, Axes], layers: np.ndarray, nonfinite: np.ndarray, zero: np.ndarray, position: float, colour: str) -> None:
    """✕ in the top strip at non-finite layers, ▼ in the bottom strip at zero ones, at this scheme's height."""
    for row, marks, symbol in ((0, nonfinite, "x"), (2, zero, "v")):
        if marks.any():
            panels[row].plot(layers[marks], np.full(marks.sum(), position), symbol, color=colour, ms=5, mew=1.3)


def draw_layer_curves(
    panels: dict[int, Axes],
    series: dict[str, np.ndarray],
    theory: dict[str, np.ndarray] | None,
    nonfinite: dict[str, np.ndarray],
    zero: dict[str, np.ndarray],
) -> tuple[list[Any], list[str], list[np.ndarray]]:
    """Each scheme in turn: its median and band, its theory, a dotted line at its first non-finite
    layer and its marks in the strips (``panels`` as :func:`figure_with_strips`). Returns the
    legend's lines and names, and the values the y-range must show."""
    axes, labels, duplicates = panels[1], list(series), duplicate_curves(series)
    handles: list[Any] = []
    names: list[str] = []
    shown_values: list[np.ndarray] = []
    for index, label in enumerate(labels):
        values = series[label]
        layers = np.arange(1, values.shape[1] + 1)
        median = median_line(values)
        low, high = band(values)
        style, marker, name = layer_curve_style(index, labels, duplicates, len(layers))
        handles.append(draw_median_and_band(axes, layers, median, low, high, values.shape[0], lw=2, **style, **marker))
        names.append(name)
        shown_values += [low, high]
        if theory is not None and label in theory:
            shown_values.append(draw_layer_theory(axes, layers, theory[label], median, style["color"]))
        if nonfinite[label].any():
            axes.axvline(int(layers[nonfinite[label]][0]), color=style["color"], ls=":", lw=1)
        mark_strips(panels, layers, nonfinite[label], zero[label], 1 - (index + 1) / (len(labels) + 1), style["color"])
    return handles, names, shown_values


def set_std_limits(axes: Axes, shown_values: list[np.ndarray]) -> None:
    """The y-range of :func:`log_limits` around ``shown_values``; with none, a fixed frame that says why it is empty."""
    limits = log_limits(np.concatenate([np.ravel(values) for values in shown_values])) if shown_values else None
    if limits is None:
        axes.set_ylim(1e-3, 1e3)
        axes.text(0.5, 0.5, "no finite, non-zero std to draw", ha="center", va="center", transform=axes.transAxes, color="0.4")
    else:
        axes.set_ylim(*limits)


def label_layer_axis(axes: Axes, row_names: Sequence[str] | None) -> None:
    """Layer numbers, or a probed model's module names (in execution order) slanted under each layer."""
    if row_names is None:
        axes.set_xlabel("layer")
    else:
        axes.set_xticks(range(1, len(row_names) + 1), row_names, rotation=45, ha="right", fontsize=8)
        axes.set_xlabel("module (execution order)")


def std_legend_entries(
    handles: list[Any], names: list[str], series: dict[str, np.ndarray], theory: bool, nonfinite: bool, zero: bool
) -> tuple[list[Any], list[str]]:
    """The schemes' ``handles`` and ``names``, then the key: median and band, theory, the strips' marks."""
    seed_handles, seed_names = seed_legend_entries({values.shape[0] for values in series.values()})
    handles, names = handles + seed_handles, names + seed_names
    if theory:
        handles.append(Line2D([], [], color="0.3", ls="--", lw=1.2))
        names.append("mean-field theory")
    if nonfinite:
        handles.append(Line2D([], [], color="0.3", marker="x", ls=":", lw=1))
        names.append("non-finite (any seed; dotted: first layer)")
    if zero:
        handles.append(Line2D([], [], color="0.3", marker="v", ls="none"))
        names.append("std exactly 0 (any seed)")
    return handles, names


def std_by_layer_figure(
    series: dict[str, np.ndarray],
    ylabel: str,
    title: str,
    theory: dict[str, np.ndarray] | None = None,
    row_names: Sequence[str] | None = None,
) -> Figure:
    """Per-layer std on a log scale: median over seeds as a line, min–max over seeds as a band.

    ``row_names`` (a probed model's modules, in execution order) label the x-axis instead of layer numbers.

    Args:
        series: label → array ``[seeds, depth]`` of stds (NaN where activations were non-finite).
        ylabel, title: axis label and title.
        theory: label → array ``[depth]`` of predictions, drawn dashed in the same colour.

    The y-range follows the measurements (and the theory where a measurement exists), so a theory
    that runs on past a float overflow leaves the frame instead of squashing the data. Layers the
    log scale cannot show get their own labelled strips: non-finite (✕) above, std = 0 (▼) below,
    one row per scheme so that marks never hide each other. A curve identical to an earlier one is
    drawn with markers and says so in the legend.
    """
    labels = list(series)
    nonfinite = {label: ~np.isfinite(values).all(axis=0) for label, values in series.items()}
    zero = {label: (values == 0).any(axis=0) for label, values in series.items()}
    any_nonfinite, any_zero = (any(mask.any() for mask in marks.values()) for marks in (nonfinite, zero))
    strip_height = 0.25 + 0.12 * len(labels)
    figure, grid, panels = figure_with_strips(strip_height if any_nonfinite else 0, strip_height if any_zero else 0)
    axes = panels[1]
    axes.set_yscale("log")
    handles, names, shown_values = draw_layer_curves(panels, series, theory, nonfinite, zero)
    set_std_limits(axes, shown_values)
    for row, text in ((0, "non-\nfinite"), (2, "std\n= 0")):
        if row in panels:
            label_strip(panels[row], text)
            panels[row].grid(True, axis="x", alpha=0.3)
    with_theory = bool(theory and any(label in theory for label in labels))
    legend = std_legend_entries(handles, names, series, with_theory, any_nonfinite, any_zero)
    figure.legend(*legend, loc="outside right upper", fontsize=9)
    label_layer_axis(grid[-1], row_names)
    axes.set_ylabel(ylabel)
    grid[0].set_title(title, fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    return figure
