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

from initbench.config import DEFAULT_COMPARE, apply_overrides, validate_config
from initbench.experiments import SilentProgress
from initbench.plots import std_by_layer_figure
from initbench.runner import execute

DEPTH, SEEDS = 50, 16
series: dict[str, np.ndarray] = {}
theory: dict[str, np.ndarray] = {}
with tempfile.TemporaryDirectory() as scratch:
    for width in (16, 64, 1024):
        raw = {**DEFAULT_COMPARE, "init": {"schemes": ["he"]}}
        overrides = [f"model.width={width}", f"model.depth={DEPTH}", f"seeds={SEEDS}", "input.batch=256", "device=cpu"]
        config = validate_config(apply_overrides(raw, overrides), "docs/finite_width.py")
        directory, result = execute(config, Path(scratch) / f"w{width}", SilentProgress())
        table = result.tables["layer_stats.csv"]
        std, predicted = table.columns.index("std"), table.columns.index("theory_std")
        label = f"width {width}"
        series[label] = np.array([[row[std] for row in table.rows if row[2] == seed] for seed in range(SEEDS)])
        theory[label] = np.array([row[predicted] for row in table.rows if row[2] == 0])
figure = std_by_layer_figure(series, "std of activations φ(h)", f"He-initialized ReLU net, {DEPTH} layers, {SEEDS} seeds per width", theory=theory)
figure.savefig(Path(__file__).with_name("finite_width.png"), dpi=110)
