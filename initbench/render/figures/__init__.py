"""Figures, built with matplotlib's object API (no pyplot state). Functions take plain data and
return a ``Figure``; the run directory saves it. Each scheme keeps its colour and line style (its
position in the run) in every figure; legends sit outside the axes, so they never cover data.

One module per kind of figure (``layers``, ``histograms``, ``phase``, ``training``), over ``style``,
which they share; this facade re-exports the builders and the style helpers other layers use.
"""

from initbench.render.figures.histograms import histograms_figure
from initbench.render.figures.layers import std_by_layer_figure
from initbench.render.figures.phase import phase_figure
from initbench.render.figures.style import color, figure_with_strips, label_strip, linestyle, luminance, seed_count_text, text_color_on
from initbench.render.figures.training import decision_boundary_figure, training_curves_figure

__all__ = [
    "color",
    "decision_boundary_figure",
    "figure_with_strips",
    "histograms_figure",
    "label_strip",
    "linestyle",
    "luminance",
    "phase_figure",
    "seed_count_text",
    "std_by_layer_figure",
    "text_color_on",
    "training_curves_figure",
]
