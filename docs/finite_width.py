"""Regenerates docs/finite_width.png: where mean-field theory and measurement part ways.

    python docs/finite_width.py

The same 50-layer ReLU net with Kaiming weights, at widths 16, 64 and 1024, 16 seeds each, run
through initbench's own pipeline (``compare`` with ``--width``) and drawn with its own plot, with
the mean-field prediction dashed. Theory is the infinite-width limit: a wide net follows it, a
narrow one spreads around it and its typical (median) std drifts below it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from initbench.api import compare
from initbench.render.figures import std_by_layer_figure

DEPTH, SEEDS = 50, 16
series: dict[str, np.ndarray] = {}
theory: dict[str, np.ndarray] = {}
with tempfile.TemporaryDirectory() as scratch:
    for width in (16, 64, 1024):
        result = compare(["he"], depth=DEPTH, width=width, seeds=SEEDS, batch=256, device="cpu", out=Path(scratch) / f"w{width}")
        rows = result.layer_stats
        label = f"width {width}"
        series[label] = np.array([[row["std"] for row in rows if row["seed"] == seed] for seed in range(SEEDS)])
        theory[label] = np.array([row["theory_std"] for row in rows if row["seed"] == 0])
figure = std_by_layer_figure(series, "std of activations φ(h)", f"He-initialized ReLU net, {DEPTH} layers, {SEEDS} seeds per width", theory=theory)
figure.savefig(Path(__file__).with_name("finite_width.png"), dpi=110)
