"""A sweep's figures: a measured column against depth (one line per scheme and other axis), and a
heatmap over two axes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from initbench.render.figures import color, figure_with_strips, label_strip, text_color_on
from initbench.runs.sweeps.collect import SweepReport, result_columns, series_label, varying

#: By depth: one line style per activation, one marker per setting of the other keys that vary.
ACTIVATION_STYLES: list[Any] = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
SETTING_MARKERS = "osD^vP*"

METRIC_LABELS = {"std_last": "std of φ(h) at the last layer", "test_acc": "test accuracy", "loss": "final loss"}


def other_varying_keys(report: SweepReport, rows: list[dict[str, Any]], shown: tuple[str, ...]) -> list[str]:
    """The swept keys besides ``shown`` (and the point's name) that vary over ``rows``, results left out."""
    candidates = [column for column in report.columns if column not in ("point", *shown)]
    return [key for key in varying(rows, candidates) if key not in result_columns()]


def draw_depth_theory(axes: Axes, depths: list[int], members: list[dict[str, Any]], style: dict[str, Any]) -> bool:
    """The mean-field std at the last layer, thin and faded in the line's style, if any is positive; whether drawn."""
    predicted = [row.get("theory_std_last") for row in members]
    if not any(isinstance(value, (int, float)) and math.isfinite(value) and value > 0 for value in predicted):
        return False
    axes.plot(depths, [value if isinstance(value, (int, float)) else math.nan for value in predicted], lw=1, alpha=0.55, **style)
    return True


def mark_depth_strips(panels: dict[int, Axes], depths: list[int], values: list[float], log: bool, position: float, colour: str) -> None:
    """✕ in the top strip at non-finite values; on a log scale ▼ in the bottom strip at zeros."""
    for depth, value in zip(depths, values, strict=True):
        if not math.isfinite(value):
            panels[0].plot([depth], [position], "x", color=colour, ms=7, mew=1.5)
        elif log and value == 0:
            panels[2].plot([depth], [position], "v", color=colour, ms=7)


def draw_depth_series(panels: dict[int, Axes], rows: list[dict[str, Any]], others: list[str], metric: str, log: bool) -> bool:
    """One line per (scheme, activation, other settings) over depth, in the main panel (1), its
    theory beside it and its unshowable values in the strips; whether any theory was drawn."""
    schemes = list(dict.fromkeys(row["scheme"] for row in rows))
    activations = list(dict.fromkeys(str(row["activation"]) for row in rows))
    settings = list(dict.fromkeys(series_label(row, others) for row in rows))
    lines: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault((row["scheme"], str(row["activation"]), series_label(row, others)), []).append(row)
    theory_drawn = False
    for number_, ((scheme, activation, setting), members) in enumerate(lines.items()):
        members = sorted(members, key=lambda row: row["depth"])
        depths = [row["depth"] for row in members]
        values = [float(row[metric]) for row in members]
        style = {"color": color(schemes.index(scheme)), "ls": ACTIVATION_STYLES[activations.index(activation) % len(ACTIVATION_STYLES)]}
        marker = SETTING_MARKERS[settings.index(setting) % len(SETTING_MARKERS)]
        shown = [value if math.isfinite(value) and (value > 0 or not log) else math.nan for value in values]
        panels[1].plot(depths, shown, marker=marker, lw=2, **style)
        if metric == "std_last" and draw_depth_theory(panels[1], depths, members, style):
            theory_drawn = True
        mark_depth_strips(panels, depths, values, log, 1 - (number_ + 1) / (len(lines) + 1), style["color"])
    return theory_drawn


def set_depth_limits(axes: Axes, measured: list[float], log: bool) -> None:
    """On a log scale, at least a decade around the finite positive measurements (the theory does
    not set the range), 10% margins; 1e-3 to 1e3 when there are none."""
    finite = [value for value in measured if math.isfinite(value) and (value > 0 or not log)]
    if log and finite:
        low, high = math.log10(min(finite)), math.log10(max(finite))
        middle, span = (low + high) / 2, max(high - low, 1.0)
        axes.set_ylim(10 ** (middle - 0.6 * span), 10 ** (middle + 0.6 * span))
    elif log:
        axes.set_ylim(1e-3, 1e3)


def by_depth_legend_entries(
    schemes: list[str], activations: list[str], settings: list[str], theory: bool, nonfinite: bool, zero: bool
) -> tuple[list[Any], list[str]]:
    """Colours for the schemes; with more than one activation or setting their line styles, and
    markers for the settings; then the theory and the strips' marks."""
    handles: list[Any] = [Line2D([], [], color=color(index), lw=2) for index in range(len(schemes))]
    names = [f"scheme {scheme}" for scheme in schemes]
    if len(activations) > 1 or len(settings) > 1:
        handles += [
            Line2D([], [], color="0.3", ls=ACTIVATION_STYLES[index % len(ACTIVATION_STYLES)], lw=2) for index in range(len(activations))
        ]
        names += [f"activation {activation}" for activation in activations]
    if len(settings) > 1:
        handles += [
            Line2D([], [], color="0.3", marker=SETTING_MARKERS[index % len(SETTING_MARKERS)], ls="none") for index in range(len(settings))
        ]
        names += settings
    if theory:
        handles.append(Line2D([], [], color="0.3", lw=1, alpha=0.55))
        names.append("mean-field theory (thin)")
    if nonfinite:
        handles.append(Line2D([], [], color="0.3", marker="x", ls="none"))
        names.append("non-finite")
    if zero:
        handles.append(Line2D([], [], color="0.3", marker="v", ls="none"))
        names.append("exactly 0")
    return handles, names


def by_depth_figure(report: SweepReport) -> Figure:
    """The metric at the last layer (or after training) against depth: one colour per scheme, one
    line style per activation, one marker per value of any other key that varies.

    Log scales on both axes for std (depths usually span decades), with the mean-field prediction
    thin and faded beside each measured line where there is one. Non-finite values are drawn as ✕
    and zeros as ▼ in labelled strips above and below, as in ``std_by_layer.png``.
    """
    assert report.metric is not None
    metric = report.metric
    rows = [row for row in report.rows if isinstance(row.get("depth"), int) and metric in row]
    others = other_varying_keys(report, rows, (metric, "depth", "scheme", "activation"))
    log = metric == "std_last"
    measured = [float(row[metric]) for row in rows]
    nonfinite = any(not math.isfinite(value) for value in measured)
    zero = log and any(value == 0 for value in measured)
    figure, grid, panels = figure_with_strips(0.8 if nonfinite else 0, 0.8 if zero else 0)
    axes = panels[1]
    if log:
        axes.set_yscale("log")
    axes.set_xscale("log")
    theory_drawn = draw_depth_series(panels, rows, others, metric, log)
    set_depth_limits(axes, measured, log)
    for row_index, text in ((0, "non-\nfinite"), (2, "= 0")):
        if row_index in panels:
            label_strip(panels[row_index], text)
    depths = sorted({row["depth"] for row in rows})
    grid[-1].set_xticks(depths, [str(depth) for depth in depths])
    grid[-1].xaxis.set_minor_locator(NullLocator())
    grid[-1].set_xlabel("depth (layers)")
    axes.set_ylabel(METRIC_LABELS[metric])
    swept = ", ".join(axis.key for axis in report.sweep.axes)
    grid[0].set_title(f"{report.sweep.name}: {metric} against depth (median over seeds); swept: {swept}", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    schemes = list(dict.fromkeys(row["scheme"] for row in rows))
    activations = list(dict.fromkeys(str(row["activation"]) for row in rows))
    settings = list(dict.fromkeys(series_label(row, others) for row in rows))
    legend = by_depth_legend_entries(schemes, activations, settings, theory_drawn, nonfinite, zero)
    figure.legend(*legend, loc="outside right upper", fontsize=8)
    return figure


def heatmap_norm(values: list[float], metric: str) -> Normalize:
    """The colour scale shared by every panel: log10 std from -3 to 3 (further out takes the end
    colours), accuracy from 0 to 1, anything else from its finite minimum to maximum."""
    if metric == "std_last":
        return Normalize(-3, 3)
    finite = [value for value in values if math.isfinite(value)] or [0.0, 1.0]
    return Normalize(0, 1) if metric == "test_acc" else Normalize(min(finite), max(finite))


def heatmap_cells(
    members: list[dict[str, Any]], schemes: list[str], activations: list[str], metric: str
) -> tuple[np.ndarray, list[list[str]]]:
    """A panel's ``[scheme, activation]`` values (log10 for std, NaN where it has none) and each cell's
    text: the value, or for std "non-finite" or "0", then the verdict (or "diverged") if any."""
    log = metric == "std_last"
    values = np.full((len(schemes), len(activations)), np.nan)
    notes = [["" for _ in activations] for _ in schemes]
    for row in members:
        r, c = schemes.index(row["scheme"]), activations.index(str(row["activation"]))
        value = float(row[metric])
        verdict = row.get("verdict") or ("" if row.get("diverged") in (None, 0) else "diverged")
        below = f"\n{verdict}" if verdict else ""
        if log:
            values[r, c] = math.log10(value) if math.isfinite(value) and value > 0 else np.nan
            notes[r][c] = ("non-finite" if not math.isfinite(value) else "0" if value == 0 else f"{value:.2g}") + below
        else:
            values[r, c] = value
            notes[r][c] = f"{value:.3g}" + below
    return values, notes


def draw_heatmap_panel(
    axes: Axes, values: np.ndarray, notes: list[list[str]], norm: Normalize, log: bool, schemes: list[str], activations: list[str]
) -> AxesImage:
    """The cells coloured by value (grey where there is none), each with its text in black or white by its colour."""
    image = axes.imshow(np.ma.masked_invalid(values), cmap="RdBu_r" if log else "viridis", norm=norm, aspect="auto")
    axes.set_facecolor("0.85")
    for r in range(len(schemes)):
        for c in range(len(activations)):
            background = image.cmap(norm(values[r, c])) if math.isfinite(values[r, c]) else (0.85, 0.85, 0.85)
            axes.text(c, r, notes[r][c], ha="center", va="center", fontsize=7, color=text_color_on(background))
    axes.set_xticks(range(len(activations)), activations, fontsize=8)
    axes.set_yticks(range(len(schemes)), schemes, fontsize=8)
    return image


def heatmap_figure(report: SweepReport) -> Figure:
    """Scheme × activation, coloured by log10 std at the last layer (or test accuracy, or loss).

    One panel per combination of the other keys that vary (depth, width, ...), all on one colour
    scale with one colorbar. Each cell shows its value and verdict, in black or white by the
    cell's colour; non-finite cells are grey and say so.
    """
    assert report.metric is not None
    rows = [row for row in report.rows if report.metric in row]
    others = other_varying_keys(report, rows, ("scheme", "activation"))
    panels: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        panels.setdefault(series_label(row, others), []).append(row)
    schemes = list(dict.fromkeys(row["scheme"] for row in rows))
    activations = list(dict.fromkeys(str(row["activation"]) for row in rows))
    log = report.metric == "std_last"
    columns = min(len(panels), 3)
    grid_rows = math.ceil(len(panels) / columns)
    norm = heatmap_norm([float(row[report.metric]) for row in rows], report.metric)
    figure = Figure(figsize=(1.6 + 1.9 * len(activations) * columns, 1.2 + 0.55 * len(schemes) * grid_rows + 0.6), layout="constrained")
    image = None
    for number_, (title, members) in enumerate(panels.items()):
        axes = figure.add_subplot(grid_rows, columns, number_ + 1)
        values, notes = heatmap_cells(members, schemes, activations, report.metric)
        image = draw_heatmap_panel(axes, values, notes, norm, log, schemes, activations)
        axes.set_title(title or report.sweep.name, fontsize=9)
    if image is not None:
        label = "log10 std of φ(h) at the last layer (0: std 1)" if log else report.metric
        figure.colorbar(image, ax=figure.axes, label=label, shrink=0.8, extend="both" if log else "neither")
    return figure
