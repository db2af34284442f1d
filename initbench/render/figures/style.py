"""What every figure shares: each scheme's colour and line style, medians and seed bands,
log limits, the figure with non-finite strips, and the seed legend."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


#: The first ten schemes are solid, the next ten dash-dotted: 20 distinct (colour, style) pairs.
#: Theory is dashed and thinner.
LINESTYLES: list[Any] = ["-", (0, (8, 2, 1.5, 2))]


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
