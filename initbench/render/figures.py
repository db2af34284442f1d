"""Figures, built with matplotlib's object API (no pyplot state). Functions take plain data and
return a ``Figure``; the run directory saves it. Each scheme keeps its colour and line style (its
position in the run) in every figure; legends sit outside the axes, so they never cover data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize, PowerNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from initbench.render.formatting import format_number, reached_text

if TYPE_CHECKING:
    from initbench.theory.phase_diagram import PhaseDiagram


COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


#: The first ten schemes are solid, the next ten dash-dotted: 20 distinct (colour, style) pairs.
#: Theory is dashed and thinner.
LINESTYLES: list[Any] = ["-", (0, (8, 2, 1.5, 2))]


#: Markers that tell apart curves that lie on top of each other.
DUPLICATE_MARKERS = "osD^v<>"


#: A histogram bin holding more than this many times the third-largest bin is a spike (ReLU's
#: zeros, tanh's ±1): it is cut to the height of the rest and its share printed on it.
SPIKE_RATIO = 3.0


def color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def linestyle(index: int) -> Any:
    return LINESTYLES[(index // len(COLORS)) % len(LINESTYLES)]


def luminance(rgb: Sequence[float]) -> float:
    """Relative luminance (ITU-R BT.709 weights on sRGB), 0 black to 1 white: picks a readable text colour."""
    red, green, blue = rgb[:3]
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def text_color_on(rgb: Sequence[float]) -> str:
    return "black" if luminance(rgb) > 0.45 else "white"


def seed_count_text(counts: set[int]) -> str:
    """How many seeds the curves have, for a legend: ``3 seeds`` when every curve has the same
    number, else ``seeds``."""
    return f"{counts.pop()} seeds" if len(counts) == 1 else "seeds"


def log_limits(values: np.ndarray) -> tuple[float, float] | None:
    """Log-axis limits around the finite positive ``values``: at least a decade, 8% margins."""
    shown = values[np.isfinite(values) & (values > 0)]
    if not shown.size:
        return None
    low, high = math.log10(float(shown.min())), math.log10(float(shown.max()))
    middle, span = (low + high) / 2, max(high - low, 1.0)
    return 10 ** (middle - 0.58 * span), 10 ** (middle + 0.58 * span)


def same_curve(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two ``[seeds, depth]`` arrays draw the same median line and the same marks."""
    if first.shape[1] != second.shape[1]:
        return False
    return bool(
        np.array_equal(np.isfinite(first).all(axis=0), np.isfinite(second).all(axis=0))
        and np.array_equal((first == 0).any(axis=0), (second == 0).any(axis=0))
        and np.allclose(median_line(first), median_line(second), rtol=1e-6, atol=0, equal_nan=True)
    )


def median_line(values: np.ndarray) -> np.ndarray:
    """Median over seeds of the finite positive values per layer (NaN where there are none)."""
    positive = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    with warnings.catch_warnings():  # layers where every seed is 0 or non-finite are all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(positive, axis=0)


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max over seeds of the finite positive values per layer."""
    positive = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(positive, axis=0), np.nanmax(positive, axis=0)


def figure_with_strips(above: float, below: float) -> tuple[Figure, np.ndarray, dict[int, Axes]]:
    """A 10.5 × 5.8 figure: main axes of height 10, with a strip of height ``above`` over it and one
    of height ``below`` under it where those are > 0, all sharing x. Returns the figure, its axes
    top to bottom, and position → axes for those present (0 top strip, 1 main axes, 2 bottom strip)."""
    heights = [above, 10, below]
    rows = [index for index, height in enumerate(heights) if height]
    figure = Figure(figsize=(10.5, 5.8), layout="constrained")
    grid = figure.subplots(len(rows), 1, sharex=True, height_ratios=[heights[index] for index in rows], squeeze=False)[:, 0]
    return figure, grid, dict(zip(rows, grid, strict=True))


def label_strip(strip: Axes, text: str) -> None:
    """A marks strip: no y scale (marks sit at fixed heights in 0–1), its label beside it, grey."""
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.set_ylabel(text, rotation=0, ha="right", va="center", fontsize=9)
    strip.set_facecolor("0.96")


def seed_legend_entries(seeds: set[int]) -> tuple[list[Any], list[str]]:
    """The legend's key to a median line and its min–max band over ``seeds`` (the seed counts)."""
    handles: list[Any] = [Line2D([], [], color="0.3", lw=2)]
    names = [f"median over {seed_count_text(set(seeds))}" if max(seeds) > 1 else "one seed"]
    if max(seeds) > 1:
        handles.append(Patch(color="0.3", alpha=0.25, lw=0))
        names.append(f"min–max over {seed_count_text(set(seeds))}")
    return handles, names


def draw_median_and_band(
    axes: Axes, x: np.ndarray, median: np.ndarray, low: np.ndarray, high: np.ndarray, seeds: int, **line: Any
) -> Line2D:
    """The median over seeds as a line, and with several seeds their min–max as a faint band."""
    drawn = axes.plot(x, median, **line)[0]
    if seeds > 1:
        axes.fill_between(x, low, high, color=line["color"], alpha=0.18, lw=0)
    return drawn


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


def compact_ticks(value: float, _position: int) -> str:
    return "0" if value == 0 else f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.0e}"


def spike_bins(share: np.ndarray) -> np.ndarray:
    """The bins holding over SPIKE_RATIO times the third-largest bin (none with fewer than 3 bins)."""
    return share > SPIKE_RATIO * np.sort(share)[-3] if len(share) >= 3 else np.zeros(len(share), dtype=bool)


def draw_spike(axes: Axes, edges: np.ndarray, share: np.ndarray, bin_index: int, top: float, colour: str) -> None:
    """A spike's bar, hatched and cut to ``top``, with its share printed beside it on the side with room."""
    left, right = float(edges[bin_index]), float(edges[bin_index + 1])
    height = min(float(share[bin_index]), top)
    axes.bar(left, height, width=right - left, align="edge", color=colour, alpha=0.45, hatch="////", edgecolor="black", lw=0.5)
    on_left = bin_index < len(share) / 2
    axes.text(
        right if on_left else left, 0.97 * top, f" {share[bin_index]:.0%} " if on_left else f"{share[bin_index]:.0%} ",
        ha="left" if on_left else "right", va="top", fontsize=7, fontweight="bold",
    )


def draw_histogram(axes: Axes, edges: np.ndarray, counts: np.ndarray, colour: str) -> bool:
    """Each bin's share of the values, spikes cut to 1.25 × the tallest other bin; whether there was a spike."""
    share = counts / counts.sum()
    spikes = spike_bins(share)
    rest = share[~spikes]
    top = 1.25 * float(rest.max()) if spikes.any() and rest.size and rest.max() > 0 else 1.08 * float(share.max())
    axes.stairs(np.where(spikes, 0.0, share), edges, fill=True, color=colour, alpha=0.8)
    for bin_index in np.flatnonzero(spikes):
        draw_spike(axes, edges, share, bin_index, top, colour)
    axes.set_ylim(0, top)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.yaxis.set_major_locator(MaxNLocator(3))
    axes.xaxis.set_major_locator(MaxNLocator(3))
    axes.xaxis.set_major_formatter(FuncFormatter(compact_ticks))
    return bool(spikes.any())


def mark_missing_histogram(axes: Axes) -> None:
    """A grey panel without ticks that says the layer was non-finite."""
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_facecolor("0.95")
    message = "non-finite\n(inf or NaN):\nno histogram"
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="red", fontsize=8)


def histograms_figure(histograms: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]], title: str) -> Figure:
    """A grid of activation histograms: one row per scheme, one column per layer shown.

    Args:
        histograms: label → layer → ``(edges, counts)`` (edges NaN when the layer was non-finite).

    Bars are each bin's share of the values. A spike (a bin over SPIKE_RATIO times the third
    largest: ReLU's exact zeros, tanh's saturated ±1) would flatten everything else, so it is cut
    to the height of the rest, hatched, and its share printed on it.
    """
    labels = list(histograms)
    layers = sorted({layer for per_layer in histograms.values() for layer in per_layer})
    figure = Figure(figsize=(2.4 * len(layers) + 1.4, 1.8 * len(labels) + 1.0), layout="constrained")
    grid = figure.subplots(len(labels), len(layers), squeeze=False)
    spiked = False
    for row, label in enumerate(labels):
        for column, layer in enumerate(layers):
            axes = grid[row][column]
            edges, counts = histograms[label][layer]
            if row == 0:
                axes.set_title(f"layer {layer}", fontsize=9)
            if column == 0:
                axes.set_ylabel(f"{label}\nshare of values", fontsize=8)
            axes.tick_params(labelsize=7)
            if not np.isfinite(edges).all() or counts.sum() == 0:
                mark_missing_histogram(axes)
                continue
            spiked = draw_histogram(axes, edges, counts, color(row)) or spiked
            if row == len(labels) - 1 or not np.isfinite(histograms[labels[row + 1]][layer][0]).all():
                axes.set_xlabel("φ(h)", fontsize=8)  # the bottom row, or above a non-finite panel (it has no x ticks)
    if spiked:
        figure.legend(
            [Patch(facecolor="0.7", hatch="////", edgecolor="black", lw=0.5)],
            ["a spike (a bin over 3× the others), drawn no taller than the rest; its share printed on it"],
            loc="outside lower center",
            fontsize=8,
        )
    figure.suptitle(title)
    return figure


def cell_step(values: np.ndarray) -> float:
    """The width of a cell centred on each of evenly spaced ``values``; 1 for a single value, so a
    one-value axis (``--sb2 0.05``) is a visible band."""
    return float(values[1] - values[0]) if len(values) > 1 else 1.0


def cell_edges(values: np.ndarray) -> np.ndarray:
    """The ``len(values) + 1`` edges of cells centred on evenly spaced ``values`` (pcolormesh's flat shading)."""
    return np.append(values, values[-1] + cell_step(values)) - cell_step(values) / 2


def cell_rectangles(axes: Axes, xs: np.ndarray, ys: np.ndarray, mask: np.ndarray, **style: Any) -> None:
    """Draw the cells of a ``[len(ys), len(xs)]`` grid where ``mask`` holds (centred on the points)."""
    dx, dy = cell_step(xs), cell_step(ys)
    for row, column in zip(*np.nonzero(mask), strict=True):
        axes.add_patch(Rectangle((xs[column] - dx / 2, ys[row] - dy / 2), dx, dy, **style))


NO_FIXED_POINT = {"facecolor": "0.8", "edgecolor": "0.55", "hatch": "xx", "lw": 0}


NOT_SETTLED = {"facecolor": "white", "edgecolor": "crimson", "hatch": "///", "lw": 0}


def draw_chi_panel(
    figure: Figure, axes: Axes, diagram: PhaseDiagram, edges: tuple[np.ndarray, np.ndarray], positions: dict[str, float]
) -> list[Any]:
    """χ₁ at q*, blue (order) below 1 and red (chaos) above, with its χ₁ = 1 line and the schemes'
    σ_w² marked on σ_b² = 0; returns the legend's handles for the marks and the line."""
    sw2, sb2 = np.meshgrid(diagram.sw2, diagram.sb2)
    chi = np.ma.masked_invalid(diagram.chi1)
    finite_chi = chi.compressed()
    top = max(float(finite_chi.max()) if finite_chi.size else 2.0, 1.01)
    bottom = min(float(finite_chi.min()) if finite_chi.size else 0.0, 0.99)
    mesh = axes.pcolormesh(*edges, chi, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=1.0, vmin=bottom, vmax=top))
    figure.colorbar(mesh, ax=axes, label="χ₁ at q*")
    if finite_chi.size and finite_chi.min() < 1 < finite_chi.max() and min(sw2.shape) > 1:
        axes.contour(sw2, sb2, chi.filled(np.nan), levels=[1.0], colors="black", linewidths=2)
    axes.set_title(f"Order (blue) and chaos (red): {diagram.activation}")
    handles: list[Any] = []
    for index, (label, value) in enumerate(positions.items()):
        symbol = "o^sD"[index % 4]
        handles.append(axes.plot([value], [0.0], marker=symbol, color="gold", mec="black", ms=9, ls="none", label=label, clip_on=False)[0])
    handles.append(Line2D([], [], color="black", lw=2, label="χ₁ = 1 (edge of chaos)"))
    return handles


def draw_xi_panel(
    figure: Figure, axes: Axes, diagram: PhaseDiagram, edges: tuple[np.ndarray, np.ndarray], no_fixed_point: np.ndarray
) -> None:
    """ξ_c on a log colour scale; an infinite ξ_c (at χ₁ = 1) takes the top colour, the colorbar's arrow."""
    xi = np.where(no_fixed_point, np.nan, diagram.xi_c)
    finite_xi = xi[np.isfinite(xi) & (xi > 0)]
    if finite_xi.size:
        xi_top = float(finite_xi.max())
        norm = LogNorm(vmin=float(finite_xi.min()), vmax=xi_top if xi_top > finite_xi.min() else xi_top * 10)
        mesh = axes.pcolormesh(*edges, np.ma.masked_invalid(np.minimum(xi, xi_top)), cmap="viridis", norm=norm)
        figure.colorbar(mesh, ax=axes, label="ξ_c (layers)", extend="max" if np.isinf(xi).any() else "neither")
    axes.set_title("Correlation depth scale ξ_c (theory)")


def draw_depth_panels(
    figure: Figure,
    grid: Sequence[Axes],
    diagram: PhaseDiagram,
    edges: tuple[np.ndarray, np.ndarray],
    no_fixed_point: np.ndarray,
    depth: int,
) -> list[Any]:
    """The predicted (``grid[1]``) and measured (``grid[2]``) convergence depths on one colour scale
    with one colorbar, measured cells that never settled hatched red; returns the hatch's legend handle, if drawn."""
    # one scale for both panels, 0 (settled at once) to depth; the square root spreads the short depths
    norm = PowerNorm(0.5, vmin=0.0, vmax=float(depth))
    assert diagram.measured_depth is not None
    predicted = np.where(no_fixed_point, np.nan, np.minimum(diagram.predicted_depth, depth))
    measured = np.where(no_fixed_point, np.nan, diagram.measured_depth)
    grid[1].pcolormesh(*edges, np.ma.masked_invalid(predicted), cmap="viridis", norm=norm)
    mesh = grid[2].pcolormesh(*edges, np.ma.masked_invalid(measured), cmap="viridis", norm=norm)
    figure.colorbar(mesh, ax=[grid[1], grid[2]], label="layers until the correlation settles", extend="max")
    grid[1].set_title("Predicted convergence depth")
    grid[2].set_title(f"Measured convergence depth ({depth} layers)")
    not_settled = ~no_fixed_point & ~np.isfinite(diagram.measured_depth)
    if not not_settled.any():
        return []
    cell_rectangles(grid[2], diagram.sw2, diagram.sb2, not_settled, **NOT_SETTLED)
    return [Patch(**NOT_SETTLED, label=f"did not settle within {depth} layers")]


def phase_figure(diagram: PhaseDiagram, positions: dict[str, float], depth: int | None) -> Figure:
    """Heatmaps over (σ_w², σ_b²): χ₁ with its χ₁ = 1 line and the common schemes marked, and
    the correlation depth scale ξ_c; with measurements (``depth`` given), the predicted and the
    measured convergence depths side by side on one colour scale, with one colorbar.

    No cell is left blank: where q* is unbounded (no fixed point, so no χ₁, ξ_c or c*) cells are
    grey and cross-hatched; measured cells that never settled within ``depth`` layers are hatched
    red; a predicted depth beyond ``depth`` takes the top colour (the colorbar's arrow).
    """
    panels = 3 if diagram.measured_depth is not None else 2
    figure = Figure(figsize=(5.2 * panels, 5.0), layout="constrained")
    grid = figure.subplots(1, panels, squeeze=False)[0]
    edges = cell_edges(diagram.sw2), cell_edges(diagram.sb2)
    no_fixed_point = ~np.isfinite(diagram.q_star) | ~np.isfinite(diagram.chi1)
    handles = draw_chi_panel(figure, grid[0], diagram, edges, positions)
    if diagram.measured_depth is None:
        draw_xi_panel(figure, grid[1], diagram, edges, no_fixed_point)
    else:
        assert depth is not None
        handles += draw_depth_panels(figure, grid, diagram, edges, no_fixed_point, depth)
    if no_fixed_point.any():
        for axes in grid:
            cell_rectangles(axes, diagram.sw2, diagram.sb2, no_fixed_point, **NO_FIXED_POINT)
        handles.append(Patch(**NO_FIXED_POINT, label="no fixed point (q* unbounded)"))
    for axes in grid:
        axes.set_xlabel("σ_w²")
        axes.set_ylabel("σ_b²")
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=8)
    return figure


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
    from matplotlib import colormaps

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
