"""``initbench recommend``: its rules reproduce its report when run, its theory scales match the
Gaussian integrals computed with numpy, its data pass reaches unit variance measured with plain
hooks, and bad input is one line, exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from initbench.runs.recommend import data_driven_scales
from tests.conftest import read_csv

TANH_MLP = ("recommend", "--arch", "mlp", "--depth", "4", "--width", "32", "--activation", "tanh", "--seeds", "2", "--device", "cpu")


def gaussian(f, n: int = 80) -> float:
    """E[f(z)], z ~ N(0, 1), by Gauss–Hermite_e quadrature (numpy)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    return float(np.sum(weights * f(nodes)) / math.sqrt(2 * math.pi))


def test_recommended_rules_reproduce_the_reported_stds_and_follow_theory(cli, tmp_path: Path) -> None:
    result = cli(*TANH_MLP, "--steps", "20", "--out", tmp_path / "rec")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "rec" / "summary.json").read_text())
    # The theory: σ_w² = 1 for the first layer (unit inputs), 1/E[tanh(z)²] after; χ₁ = σ_w²·E[tanh'(z)²].
    second, slope = gaussian(lambda z: np.tanh(z) ** 2), gaussian(lambda z: np.cosh(z) ** -4)
    layers = summary["layers"]
    assert summary["source"] == "theory" and [layer["module"] for layer in layers] == [f"blocks.{i}.0" for i in range(4)]
    assert [layer["sigma_w2"] for layer in layers] == pytest.approx([1.0] + [1 / second] * 3, rel=1e-6)
    assert layers[1]["chi1"] == pytest.approx(slope / second, rel=1e-6)
    assert all(0.8 < layer["std_rules"] < 1.25 for layer in layers)  # unit variance, up to finite width
    assert all(layer["std_constructor"] < 0.7 for layer in layers[1:])  # PyTorch's default: Var(W) = 1/(3·fan_in) shrinks it
    assert set(summary["training"]) == {"rules", "constructor", "he"}
    # Its config.yaml, run: the same per-layer stds, bit for bit.
    assert cli("run", tmp_path / "rec" / "config.yaml", "--out", tmp_path / "again").exit_code == 0
    rows = read_csv(tmp_path / "again" / "layer_stats.csv")
    for layer in layers:
        stds = [float(row["pre_std"]) for row in rows if row["module"] == layer["row"]]
        assert len(stds) == 2 and float(np.median(stds)) == pytest.approx(layer["std_rules"], rel=1e-12)
    # And train.yaml trains the rules the report's training row measured.
    assert cli("run", tmp_path / "rec" / "train.yaml", "--out", tmp_path / "trained").exit_code == 0
    trained = json.loads((tmp_path / "trained" / "summary.json").read_text())["schemes"]
    assert next(iter(trained.values()))["loss"] == summary["training"]["rules"]["loss"]


def test_the_data_pass_brings_every_layer_to_unit_variance() -> None:
    """Measured with plain forward hooks, after the pass, on the batch it calibrated on."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 24), nn.LayerNorm(24), nn.GELU(), nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, 5))
    x = 3.0 * torch.randn(128, 12)
    before = [layer.weight.detach().clone() for layer in (model[0], model[3], model[5])]
    scales = data_driven_scales(model, x, ["0", "3", "5"], tol=1e-3)
    outputs = {}
    handles = [model[index].register_forward_hook(lambda m, i, o, index=index: outputs.__setitem__(index, o)) for index in (0, 3, 5)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    for (index, output), weight, path in zip(sorted(outputs.items()), before, ("0", "3", "5")):
        assert float(output.double().var(correction=0)) == pytest.approx(1.0, abs=2e-3)
        # The returned factor is what multiplied Var(W): the weight was rescaled by its square root.
        assert torch.allclose(model[index].weight, weight * math.sqrt(scales[path]), rtol=1e-5)


def test_a_data_driven_recommendation_for_a_factory_without_training(cli, tmp_path: Path) -> None:
    result = cli("recommend", "--factory", "tests.probe_models:small_mlp", "--input-shape", "64,5", "--seeds", "1", "--device", "cpu", "--out", tmp_path / "rec")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "rec" / "summary.json").read_text())
    assert summary["source"] == "data" and summary["training"] == {} and not (tmp_path / "rec" / "train.yaml").exists()
    # Seed 0's weights are the ones calibrated (the rules redraw them from the same stream): unit variance.
    assert [layer["std_rules"] for layer in summary["layers"]] == pytest.approx([1.0, 1.0], abs=0.02)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("recommend", "--arch", "cnnn"), "Unknown arch 'cnnn'. Did you mean 'cnn'?"),
        (("recommend", "--arch", "mlp", "--factory", "tests.probe_models:small_mlp"), "give exactly one of --arch, --factory or --config"),
        (("recommend", "--arch", "mlp", "--activation", "tanhh"), "Unknown activation 'tanhh'"),
        (("recommend", "--arch", "mlp", "--depth", "0"), "--depth: Input should be greater than or equal to 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.splitlines()) <= 2 and "Traceback" not in result.output


def test_data_driven_on_a_plain_net_calibrates_the_measured_seed(cli, tmp_path: Path) -> None:
    """With --data-driven the mlp gets the data pass: seed 0, whose weights and inputs the pass
    calibrated, has every layer's h at unit std (to the pass's tolerance and the rules' 4 digits)."""
    args = ("recommend", "--arch", "mlp", "--depth", "3", "--width", "16", "--activation", "tanh", "--seeds", "1", "--steps", "0", "--device", "cpu")
    assert cli(*args, "--data-driven", "--out", tmp_path / "rec").exit_code == 0
    summary = json.loads((tmp_path / "rec" / "summary.json").read_text())
    assert summary["source"] == "data" and summary["why_data_driven"] == "the data-driven pass was asked for"
    assert [layer["std_rules"] for layer in summary["layers"]] == pytest.approx([1.0] * 3, abs=0.006)
