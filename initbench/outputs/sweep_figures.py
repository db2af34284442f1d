"""A sweep's figures: a measured column against depth (one line per scheme and other axis), and a
heatmap over two axes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from initbench.render.figures import color, text_color_on

if TYPE_CHECKING:
    from initbench.runs.sweeps.collect import SweepReport


def by_depth_figure(report: SweepReport) -> Figure:
    """The metric at the last layer (or after training) against depth: one colour per scheme, one
    line style per activation, one marker per value of any other key that varies.

    Log scales on both axes for std (depths usually span decades), with the mean-field prediction
    thin and faded beside each measured line where there is one. Non-finite values are drawn as ✕
    and zeros as ▼ in labelled strips above and below, as in ``std_by_layer.png``.
    """
    from initbench.runs.sweeps.collect import result_columns, series_label, varying

    assert report.metric is not None
    metric = report.metric
    rows = [row for row in report.rows if isinstance(row.get("depth"), int) and metric in row]
    others = [
        key
        for key in varying(rows, [column for column in report.columns if column not in (metric, "point", "depth", "scheme", "activation")])
        if key not in result_columns()
    ]
    schemes = list(dict.fromkeys(row["scheme"] for row in rows))
    activations = list(dict.fromkeys(str(row["activation"]) for row in rows))
    settings = list(dict.fromkeys(series_label(row, others) for row in rows))
    styles = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
    markers = "osD^vP*"
    log = metric == "std_last"
    measured = [float(row[metric]) for row in rows]
    nonfinite = any(not math.isfinite(value) for value in measured)
    zero = log and any(value == 0 for value in measured)
    heights = [0.8 if nonfinite else 0, 10, 0.8 if zero else 0]
    present = [index for index, height in enumerate(heights) if height]
    figure = Figure(figsize=(10.5, 5.8), layout="constrained")
    grid = figure.subplots(len(present), 1, sharex=True, height_ratios=[heights[index] for index in present], squeeze=False)[:, 0]
    panels = dict(zip(present, grid, strict=True))
    axes = panels[1]
    if log:
        axes.set_yscale("log")
    axes.set_xscale("log")
    lines: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault((row["scheme"], str(row["activation"]), series_label(row, others)), []).append(row)
    theory_drawn = False
    for number_, ((scheme, activation, setting), members) in enumerate(lines.items()):
        members = sorted(members, key=lambda row: row["depth"])
        depths = [row["depth"] for row in members]
        values = [float(row[metric]) for row in members]
        style = {"color": color(schemes.index(scheme)), "ls": styles[activations.index(activation) % len(styles)]}
        marker = markers[settings.index(setting) % len(markers)]
        shown = [value if math.isfinite(value) and (value > 0 or not log) else math.nan for value in values]
        axes.plot(depths, shown, marker=marker, lw=2, **style)
        predicted = [row.get("theory_std_last") for row in members] if metric == "std_last" else []
        if any(isinstance(value, (int, float)) and math.isfinite(value) and value > 0 for value in predicted):
            axes.plot(depths, [value if isinstance(value, (int, float)) else math.nan for value in predicted], lw=1, alpha=0.55, **style)
            theory_drawn = True
        position = 1 - (number_ + 1) / (len(lines) + 1)
        for depth, value in zip(depths, values, strict=True):
            if not math.isfinite(value):
                panels[0].plot([depth], [position], "x", color=style["color"], ms=7, mew=1.5)
            elif log and value == 0:
                panels[2].plot([depth], [position], "v", color=style["color"], ms=7)
    finite = [value for value in measured if math.isfinite(value) and (value > 0 or not log)]
    if log and finite:
        low, high = math.log10(min(finite)), math.log10(max(finite))
        middle, span = (low + high) / 2, max(high - low, 1.0)
        axes.set_ylim(10 ** (middle - 0.6 * span), 10 ** (middle + 0.6 * span))  # the measurements set the range, not the theory
    elif log:
        axes.set_ylim(1e-3, 1e3)
    for row_index, text in ((0, "non-\nfinite"), (2, "= 0")):
        if row_index in panels:
            panels[row_index].set_ylim(0, 1)
            panels[row_index].set_yticks([])
            panels[row_index].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=9)
            panels[row_index].set_facecolor("0.96")
    depths = sorted({row["depth"] for row in rows})
    grid[-1].set_xticks(depths, [str(depth) for depth in depths])
    grid[-1].xaxis.set_minor_locator(NullLocator())
    grid[-1].set_xlabel("depth (layers)")
    axes.set_ylabel({"std_last": "std of φ(h) at the last layer", "test_acc": "test accuracy", "loss": "final loss"}[metric])
    swept = ", ".join(axis.key for axis in report.sweep.axes)
    grid[0].set_title(f"{report.sweep.name}: {metric} against depth (median over seeds); swept: {swept}", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    handles: list[Any] = [Line2D([], [], color=color(index), lw=2) for index in range(len(schemes))]
    names = [f"scheme {scheme}" for scheme in schemes]
    if len(activations) > 1 or len(settings) > 1:
        handles += [Line2D([], [], color="0.3", ls=styles[index % len(styles)], lw=2) for index in range(len(activations))]
        names += [f"activation {activation}" for activation in activations]
    if len(settings) > 1:
        handles += [Line2D([], [], color="0.3", marker=markers[index % len(markers)], ls="none") for index in range(len(settings))]
        names += settings
    if theory_drawn:
        handles.append(Line2D([], [], color="0.3", lw=1, alpha=0.55))
        names.append("mean-field theory (thin)")
    if nonfinite:
        handles.append(Line2D([], [], color="0.3", marker="x", ls="none"))
        names.append("non-finite")
    if zero:
        handles.append(Line2D([], [], color="0.3", marker="v", ls="none"))
        names.append("exactly 0")
    figure.legend(handles, names, loc="outside right upper", fontsize=8)
    return figure


def heatmap_figure(report: SweepReport) -> Figure:
    """Scheme × activation, coloured by log10 std at the last layer (or test accuracy, or loss).

    One panel per combination of the other keys that vary (depth, width, ...), all on one colour
    scale with one colorbar. Each cell shows its value and verdict, in black or white by the
    cell's colour; non-finite cells are grey and say so.
    """
    import numpy as np

    from initbench.runs.sweeps.collect import result_columns, series_label, varying

    assert report.metric is not None
    rows = [row for row in report.rows if report.metric in row]
    others = [
        key
        for key in varying(rows, [column for column in report.columns if column not in ("point", "scheme", "activation")])
        if key not in result_columns()
    ]
    panels: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        panels.setdefault(series_label(row, others), []).append(row)
    schemes = list(dict.fromkeys(row["scheme"] for row in rows))
    activations = list(dict.fromkeys(str(row["activation"]) for row in rows))
    log = report.metric == "std_last"
    columns = min(len(panels), 3)
    grid_rows = math.ceil(len(panels) / columns)
    shown = [float(row[report.metric]) for row in rows]
    if log:
        norm = Normalize(-3, 3)  # std from 1e-3 to 1e3; further out takes the end colours
    else:
        finite = [value for value in shown if math.isfinite(value)] or [0.0, 1.0]
        norm = Normalize(0, 1) if report.metric == "test_acc" else Normalize(min(finite), max(finite))
    figure = Figure(figsize=(1.6 + 1.9 * len(activations) * columns, 1.2 + 0.55 * len(schemes) * grid_rows + 0.6), layout="constrained")
    image = None
    for number_, (title, members) in enumerate(panels.items()):
        axes = figure.add_subplot(grid_rows, columns, number_ + 1)
        values = np.full((len(schemes), len(activations)), np.nan)
        notes = [["" for _ in activations] for _ in schemes]
        for row in members:
            r, c = schemes.index(row["scheme"]), activations.index(str(row["activation"]))
            value = float(row[report.metric])
            verdict = row.get("verdict") or ("" if row.get("diverged") in (None, 0) else "diverged")
            if log:
                values[r, c] = math.log10(value) if math.isfinite(value) and value > 0 else np.nan
                notes[r][c] = ("non-finite" if not math.isfinite(value) else "0" if value == 0 else f"{value:.2g}") + (
                    f"\n{verdict}" if verdict else ""
                )
            else:
                values[r, c] = value
                notes[r][c] = f"{value:.3g}" + (f"\n{verdict}" if verdict else "")
        image = axes.imshow(np.ma.masked_invalid(values), cmap="RdBu_r" if log else "viridis", norm=norm, aspect="auto")
        axes.set_facecolor("0.85")
        for r in range(len(schemes)):
            for c in range(len(activations)):
                background = image.cmap(norm(values[r, c])) if math.isfinite(values[r, c]) else (0.85, 0.85, 0.85)
                axes.text(c, r, notes[r][c], ha="center", va="center", fontsize=7, color=text_color_on(background))
        axes.set_xticks(range(len(activations)), activations, fontsize=8)
        axes.set_yticks(range(len(schemes)), schemes, fontsize=8)
        axes.set_title(title or report.sweep.name, fontsize=9)
    if image is not None:
        label = "log10 std of φ(h) at the last layer (0: std 1)" if log else report.metric
        figure.colorbar(image, ax=figure.axes, label=label, shrink=0.8, extend="both" if log else "neither")
    return figure
