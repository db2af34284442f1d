"""Per-layer histograms of activations: one panel per shown layer, spikes cut and labelled."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from initbench.render.figures.style import (
    color,
)

#: A histogram bin holding more than this many times the third-largest bin is a spike (ReLU's
#: zeros, tanh's ±1): it is cut to the height of the rest and its share printed on it.
SPIKE_RATIO = 3.0


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
        right if on_left else left,
        0.97 * top,
        f" {share[bin_index]:.0%} " if on_left else f"{share[bin_index]:.0%} ",
        ha="left" if on_left else "right",
        va="top",
        fontsize=7,
        fontweight="bold",
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
