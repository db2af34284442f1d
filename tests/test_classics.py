"""The classic behaviours of the 100-layer, 256-unit net, measured through the real pipeline.

Expected values come from the physics of each case (SCIENCE.md), not from earlier runs: N(0, 1)
weights multiply a linear net's std by about sqrt(256) = 16 per layer, so float32 (max 3.4e38 ≈
16^32) overflows in the early 30s; std 1/sqrt(width) keeps it near 1; and so on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def summary(cli, tmp_path: Path, config: str, *overrides: str) -> dict:
    out = tmp_path / "out"
    result = cli("run", REPO / "configs" / config, *overrides, "--out", out, "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    schemes = json.loads((out / "summary.json").read_text())["schemes"]
    (entry,) = schemes.values()
    return entry


def test_linear_with_unit_normal_weights_overflows_in_the_early_30s(cli, tmp_path: Path) -> None:
    entry = summary(cli, tmp_path, "linear_random.yaml", "seeds=3")
    assert all(30 <= layer <= 34 for layer in entry["first_nonfinite_layer_per_seed"])
    assert entry["std_first"] == pytest.approx(16, rel=0.1)
    assert entry["verdict"] == "exploding"


def test_linear_with_std_one_over_sqrt_width_holds_near_one(cli, tmp_path: Path) -> None:
    entry = summary(cli, tmp_path, "linear_scaled.yaml")
    assert entry["first_nonfinite_layer"] is None
    assert all(0.5 < std < 2 for std in entry["std_median_by_layer"])
    assert entry["verdict"] == "stable"


def test_tanh_with_xavier_gain_auto_settles_near_0_65(cli, tmp_path: Path) -> None:
    entry = summary(cli, tmp_path, "tanh_xavier.yaml", "input.batch=256")
    late = entry["std_median_by_layer"][50:]
    assert all(0.6 < std < 0.7 for std in late)
    assert entry["verdict"] == "stable"


def test_relu_with_xavier_vanishes_geometrically(cli, tmp_path: Path) -> None:
    entry = summary(cli, tmp_path, "relu_xavier.yaml", "seeds=1", "input.batch=256")
    stds = entry["std_median_by_layer"]
    # Var(W) = 1/fan_in and ReLU halves the second moment: the std shrinks by about 1/sqrt(2) per layer.
    assert stds[-1] / stds[49] == pytest.approx(2 ** (-50 / 2), rel=0.9)
    assert stds[-1] < 1e-10 and entry["verdict"] == "vanishing"


def test_relu_with_kaiming_stays_of_order_one(cli, tmp_path: Path) -> None:
    entry = summary(cli, tmp_path, "relu_kaiming.yaml", "input.batch=256")
    assert all(0.1 < std < 10 for std in entry["std_median_by_layer"])
    assert entry["verdict"] == "stable"


def test_tanh_small_random_vanishes_and_tanh_random_saturates(cli, tmp_path: Path) -> None:
    assert summary(cli, tmp_path / "a", "tanh_small_random.yaml")["verdict"] == "vanishing"
    assert summary(cli, tmp_path / "b", "tanh_random.yaml")["verdict"] == "saturated"
