"""Figures, built with matplotlib's object API (no pyplot state). Functions return a ``Figure``;
the run directory saves it. Colours follow the order of the schemes, the same in every figure.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator
from matplotlib.transforms import blended_transform_factory

if TYPE_CHECKING:
    from initbench.phase import PhaseDiagram
    from initbench.sweeps.collect import SweepReport

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def std_by_layer_figure(
    series: dict[str, np.ndarray],
    ylabel: str,
    title: str,
    theory: dict[str, np.ndarray] | None = None,
) -> Figure:
    """Per-layer std on a log scale: median over seeds as a line, min–max over seeds as a band.

    Args:
        series: label → array ``[seeds, depth]`` of stds (NaN where activations were non-finite).
        ylabel, title: axis label and title.
        theory: label → array ``[depth]`` of predictions, drawn dashed in the same colour.

    Layers the log scale cannot show are drawn, not dropped: std = 0 as ▼ on the bottom edge,
    non-finite values as ✕ on the top edge with a dotted line where they begin.
    """
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_yscale("log")
    edge = blended_transform_factory(axes.transData, axes.transAxes)
    for index, (label, values) in enumerate(series.items()):
        layers = np.arange(1, values.shape[1] + 1)
        with warnings.catch_warnings():  # layers where every seed is 0 or non-finite are all-NaN here
            warnings.simplefilter("ignore", RuntimeWarning)
            positive = np.where(np.isfinite(values) & (values > 0), values, np.nan)
            median = np.nanmedian(positive, axis=0) if np.isfinite(positive).any() else np.full(len(layers), np.nan)
            low, high = np.nanmin(positive, axis=0), np.nanmax(positive, axis=0)
        line = axes.plot(layers, median, color=color(index), lw=2, label=label)[0]
        if values.shape[0] > 1:
            axes.fill_between(layers, low, high, color=line.get_color(), alpha=0.2, lw=0)
        zero = (values == 0).any(axis=0)
        if zero.any():
            axes.plot(layers[zero], np.full(zero.sum(), 0.02), "v", color=line.get_color(), ms=5, transform=edge, clip_on=False)
        nonfinite = ~np.isfinite(values).all(axis=0)
        if nonfinite.any():
            first = int(layers[nonfinite][0])
            axes.plot(layers[nonfinite], np.full(nonfinite.sum(), 0.98), "x", color=line.get_color(), ms=5, transform=edge, clip_on=False)
            axes.axvline(first, color=line.get_color(), ls=":", lw=1)
        if theory is not None and label in theory:
            axes.plot(layers, theory[label], color=line.get_color(), ls="--", lw=1.2)
    handles, labels = axes.get_legend_handles_labels()
    # Proxy entries explain the edge markers and the dashed theory lines once, not per scheme.
    handles += [Line2D([], [], color="0.3", marker="v", ls="none"), Line2D([], [], color="0.3", marker="x", ls="none")]
    labels += ["std = 0 (bottom edge)", "non-finite (top edge)"]
    if theory:
        handles.append(Line2D([], [], color="0.3", ls="--"))
        labels.append("mean-field theory")
    axes.legend(handles, labels, fontsize=9, loc="best")
    axes.set_xlabel("layer")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    if not any((np.isfinite(values) & (values > 0)).any() for values in series.values()):
        axes.set_ylim(1e-3, 1e3)  # nothing drawable on a log scale: keep a sensible frame
    return figure


def histograms_figure(histograms: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]], title: str) -> Figure:
    """A grid of activation histograms: one row per scheme, one column per layer shown.

    Args:
        histograms: label → layer → ``(edges, counts)`` (edges NaN when the layer was non-finite).
    """
    labels = list(histograms)
    layers = sorted({layer for per_layer in histograms.values() for layer in per_layer})
    figure = Figure(figsize=(2.3 * len(layers) + 1, 1.7 * len(labels) + 0.8), layout="constrained")
    grid = figure.subplots(len(labels), len(layers), squeeze=False)
    for row, label in enumerate(labels):
        for column, layer in enumerate(layers):
            axes = grid[row][column]
            edges, counts = histograms[label][layer]
            if np.isfinite(edges).all():
                axes.stairs(counts / max(counts.sum(), 1), edges, fill=True, color=color(row), alpha=0.8)
            else:
                axes.text(0.5, 0.5, "non-finite", ha="center", va="center", transform=axes.transAxes, color="red")
            axes.set_yticks([])
            axes.tick_params(labelsize=7)
            if row == 0:
                axes.set_title(f"layer {layer}", fontsize=9)
            if column == 0:
                axes.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    figure.suptitle(title)
    return figure



def phase_figure(diagram: PhaseDiagram, positions: dict[str, float], depth: int | None) -> Figure:
    """Heatmaps over (σ_w², σ_b²): χ₁ with its χ₁ = 1 line and the common schemes marked, and
    the correlation depth scale ξ_c; with measurements (``depth`` given), the predicted and the
    measured convergence depths side by side on one colour scale.
    """
    from matplotlib.colors import LogNorm, TwoSlopeNorm

    panels = 3 if diagram.measured_depth is not None else 2
    figure = Figure(figsize=(5.2 * panels, 4.6), layout="constrained")
    grid = figure.subplots(1, panels, squeeze=False)[0]
    sw2, sb2 = np.meshgrid(diagram.sw2, diagram.sb2)
    chi = np.ma.masked_invalid(diagram.chi1)
    finite_chi = chi.compressed()
    top = max(float(finite_chi.max()) if finite_chi.size else 2.0, 1.01)
    bottom = min(float(finite_chi.min()) if finite_chi.size else 0.0, 0.99)
    mesh = grid[0].pcolormesh(sw2, sb2, chi, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=1.0, vmin=bottom, vmax=top), shading="nearest")
    figure.colorbar(mesh, ax=grid[0], label="χ₁ at q*")
    if finite_chi.size and finite_chi.min() < 1 < finite_chi.max() and min(sw2.shape) > 1:
        grid[0].contour(sw2, sb2, chi.filled(np.nan), levels=[1.0], colors="black", linewidths=2)
    grid[0].set_title(f"Order (blue) and chaos (red): {diagram.activation}")
    for index, (label, value) in enumerate(positions.items()):
        grid[0].plot([value], [0.0], marker="o^sD"[index % 4], color="gold", mec="black", ms=9, ls="none", label=label, clip_on=False)
    grid[0].plot([], [], color="black", lw=2, label="χ₁ = 1 (edge of chaos)")
    grid[0].legend(fontsize=8, loc="upper left")

    def depth_panel(axes, values: np.ndarray, title: str, label: str, vmax: float | None) -> None:
        shown = np.ma.masked_invalid(np.where(values > 0, values, np.nan))
        if shown.count():
            norm = LogNorm(vmin=max(float(shown.min()), 0.1), vmax=vmax or float(shown.max()))
            mesh = axes.pcolormesh(sw2, sb2, shown, cmap="viridis", norm=norm, shading="nearest")
            figure.colorbar(mesh, ax=axes, label=label)
        axes.set_title(title)

    if diagram.measured_depth is None:
        depth_panel(grid[1], diagram.xi_c, "Correlation depth scale ξ_c (theory)", "ξ_c (layers)", None)
    else:
        assert depth is not None
        limit = float(depth)
        depth_panel(grid[1], np.minimum(diagram.predicted_depth, limit), "Predicted convergence depth", "layers", limit)
        depth_panel(grid[2], diagram.measured_depth, f"Measured convergence depth (blank: > {depth})", "layers", limit)
    for axes in grid:
        axes.set_xlabel("σ_w²")
        axes.set_ylabel("σ_b²")
    return figure


def training_curves_figure(steps: np.ndarray, curves: dict[str, dict[str, np.ndarray]], title: str) -> Figure:
    """Training loss (log scale) and, for classification, test accuracy against step.

    Args:
        steps: the evaluation steps.
        curves: label → metric ("loss", "test_acc") → ``[seeds, len(steps)]`` (NaN after a run diverged).

    Median over seeds as a line, min–max as a band, as in :func:`std_by_layer_figure`.
    """
    metrics = [metric for metric in ("loss", "test_acc") if any(metric in per_label for per_label in curves.values())]
    figure = Figure(figsize=(6 * len(metrics), 4.5), layout="constrained")
    grid = figure.subplots(1, len(metrics), squeeze=False)[0]
    for axes, metric in zip(grid, metrics, strict=True):
        for index, (label, per_label) in enumerate(curves.items()):
            values = per_label[metric]
            with warnings.catch_warnings():  # steps where every seed has diverged are all-NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                median, low, high = np.nanmedian(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            axes.plot(steps, median, color=color(index), lw=2, label=label)
            if values.shape[0] > 1:
                axes.fill_between(steps, low, high, color=color(index), alpha=0.2, lw=0)
        if metric == "loss":
            axes.set_yscale("log")
            axes.set_ylabel("training loss (whole training set)")
        else:
            axes.set_ylabel("test accuracy")
            axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel("step")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=9)
    figure.suptitle(title)
    return figure


def decision_boundary_figure(
    points: np.ndarray, labels: np.ndarray, grid_x: np.ndarray, grid_y: np.ndarray, regions: dict[str, np.ndarray], title: str
) -> Figure:
    """One panel per scheme: the predicted class over a grid, with the training points on top.

    Args:
        points, labels: training inputs ``[n, 2]`` and their classes.
        grid_x, grid_y: the mesh (``numpy.meshgrid`` output).
        regions: label → predicted class per mesh point, shaped like ``grid_x``.
    """
    figure = Figure(figsize=(4.2 * len(regions), 4.3), layout="constrained")
    grid = figure.subplots(1, len(regions), squeeze=False)[0]
    classes = int(max(labels.max(), max(int(region.max()) for region in regions.values()))) + 1
    for axes, (label, region) in zip(grid, regions.items(), strict=True):
        axes.contourf(grid_x, grid_y, region, levels=np.arange(classes + 1) - 0.5, cmap="coolwarm" if classes == 2 else "tab10", alpha=0.35)
        axes.scatter(points[:, 0], points[:, 1], c=labels, cmap="coolwarm" if classes == 2 else "tab10", s=10, edgecolors="black", linewidths=0.3)
        axes.set_title(label, fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title)
    return figure


def by_depth_figure(report: SweepReport) -> Figure:
    """The metric at the last layer (or after training) against depth, one line per other setting.

    Lines are keyed by scheme × activation and any other key that varies; log scales on both axes
    for std (depths usually span decades). Non-finite values are drawn as ✕ on the top edge and zeros
    as ▼ on the bottom edge, as in ``std_by_layer.png``.
    """
    from initbench.sweeps.collect import result_columns, series_label, varying

    assert report.metric is not None
    rows = [row for row in report.rows if isinstance(row.get("depth"), int) and report.metric in row]
    keys = [
        key
        for key in varying(rows, [column for column in report.columns if column not in (report.metric, "point", "depth")])
        if key not in result_columns()
    ]
    lines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault(series_label(row, keys) or report.metric, []).append(row)
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.add_subplot()
    log = report.metric == "std_last"
    if log:
        axes.set_yscale("log")
    axes.set_xscale("log")
    edge = blended_transform_factory(axes.transData, axes.transAxes)
    for index, (label, members) in enumerate(lines.items()):
        members = sorted(members, key=lambda row: row["depth"])
        depths = [row["depth"] for row in members]
        values = [float(row[report.metric]) for row in members]
        shown = [value if math.isfinite(value) and (value > 0 or not log) else math.nan for value in values]
        axes.plot(depths, shown, "o-", color=color(index), lw=2, label=label)
        for depth, value in zip(depths, values):
            if not math.isfinite(value):
                axes.plot([depth], [0.98], "x", color=color(index), ms=7, transform=edge, clip_on=False)
            elif log and value == 0:
                axes.plot([depth], [0.02], "v", color=color(index), ms=7, transform=edge, clip_on=False)
    if log and not any(
        isinstance(row[report.metric], float) and math.isfinite(row[report.metric]) and row[report.metric] > 0 for row in rows
    ):
        axes.set_ylim(1e-3, 1e3)
    depths = sorted({row["depth"] for row in rows})
    axes.set_xticks(depths, [str(depth) for depth in depths])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xlabel("depth (layers)")
    axes.set_ylabel({"std_last": "std of φ(h) at the last layer", "test_acc": "test accuracy", "loss": "final loss"}[report.metric])
    axes.set_title(f"{report.sweep.name}: {report.metric} against depth (median over seeds; ✕ non-finite, ▼ zero)")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return figure


def heatmap_figure(report: SweepReport) -> Figure:
    """Scheme × activation, coloured by log10 std at the last layer (or test accuracy, or loss).

    One panel per combination of the other keys that vary (depth, width, ...). Each cell shows its
    value and verdict; non-finite cells are grey and say so.
    """
    from initbench.sweeps.collect import result_columns, series_label, varying

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
        masked = np.ma.masked_invalid(values)
        image = axes.imshow(masked, cmap="RdBu_r" if log else "viridis", vmin=-3 if log else None, vmax=3 if log else None, aspect="auto")
        axes.set_facecolor("0.85")
        for r in range(len(schemes)):
            for c in range(len(activations)):
                dark = log and abs(values[r, c]) > 2  # deep red or blue: white text reads better
                axes.text(c, r, notes[r][c], ha="center", va="center", fontsize=7, color="white" if dark else "black")
        axes.set_xticks(range(len(activations)), activations, fontsize=8)
        axes.set_yticks(range(len(schemes)), schemes, fontsize=8)
        axes.set_title(title or report.sweep.name, fontsize=9)
    if image is not None:
        label = "log10 std of φ(h) at the last layer (0: std 1)" if log else report.metric
        figure.colorbar(image, ax=figure.axes, label=label, shrink=0.8)
    return figure
