"""``initbench gain`` and ``initbench phase``: numbers from theory, checked against known values."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from initbench.config.grids import parse_grid
from initbench.nets.activations import ACTIVATIONS
from initbench.theory.phase_diagram import compute_phase_diagram


def test_gain_json_has_exactly_the_documented_keys(cli) -> None:
    result = cli("gain", "relu", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"activation", "variance_preserving_gain", "critical_gain", "torch_gain"}
    assert data["activation"] == "relu"
    for key in ("variance_preserving_gain", "critical_gain", "torch_gain"):
        assert data[key] == pytest.approx(math.sqrt(2), rel=1e-9)


def test_gain_for_an_activation_pytorch_does_not_know(cli) -> None:
    data = json.loads(cli("gain", "gelu", "--json").stdout)
    assert data["torch_gain"] is None
    # σ_w²·E[gelu(z)²] = 1 with E[gelu(z)²] estimated independently by Monte Carlo.
    z = np.random.default_rng(0).standard_normal(2_000_000)
    gelu_squared = np.mean((z * 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))) ** 2)
    assert data["variance_preserving_gain"] ** 2 * gelu_squared == pytest.approx(1.0, rel=3e-3)


def test_gain_with_bias_variance(cli) -> None:
    data = json.loads(cli("gain", "linear", "--sb2", "0.19", "--json").stdout)
    assert data["variance_preserving_gain"] == pytest.approx(0.9)  # σ_w² + 0.19 = 1


def test_gain_table_shows_a_measured_check(cli) -> None:
    result = cli("gain", "tanh")
    assert result.exit_code == 0, result.output
    assert "variance-preserving" in result.stdout and "critical" in result.stdout and "std L100" in result.stdout
    assert "1.667" in result.stdout  # PyTorch's 5/3


def test_gain_unknown_activation(cli) -> None:
    result = cli("gain", "gleu", "--json")
    assert result.exit_code == 2 and "Did you mean 'gelu'" in result.stderr


def test_critical_line_for_relu_passes_through_he() -> None:
    """ReLU: χ₁ = σ_w²/2 whatever σ_b², so the χ₁ = 1 line is σ_w² = 2."""
    relu = ACTIVATIONS.get("relu")()
    diagram = compute_phase_diagram(relu, np.linspace(1.0, 3.0, 5), np.array([0.0, 0.1]))
    assert np.allclose(diagram.chi1, diagram.sw2 / 2)
    row = diagram.chi1[0]
    crossing = np.interp(1.0, row, diagram.sw2)
    assert crossing == pytest.approx(2.0)


def test_tanh_phase_diagram_orders_and_chaos() -> None:
    tanh = ACTIVATIONS.get("tanh")()
    diagram = compute_phase_diagram(tanh, np.array([0.5, 1.0, 2.0, 4.0]), np.array([0.0, 0.2]))
    assert diagram.chi1[0, 0] == pytest.approx(0.5)  # q* = 0: χ₁ = σ_w²·tanh'(0)² = σ_w²
    assert diagram.chi1[0, 1] == pytest.approx(1.0)
    assert diagram.chi1[0, 2] > 1 and diagram.chi1[0, 3] > 1
    assert diagram.c_star[0, 0] == 1.0 and diagram.c_star[0, 3] < 0.5
    assert diagram.chi1[1, 0] < 1  # bias pushes the edge of chaos to larger σ_w²


def test_phase_command_writes_its_outputs(cli, tmp_path: Path) -> None:
    result = cli("phase", "--activation", "relu", "--sw2", "1:3:5", "--sb2", "0:0.2:3", "--measure", "--depth", "20", "--width", "64", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert "Xavier = He" in result.stdout
    with (tmp_path / "p" / "phase.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 15
    assert {"sigma_w2", "sigma_b2", "chi1", "xi_c", "c_star", "predicted_depth", "measured_depth"} <= set(rows[0])
    he = next(row for row in rows if float(row["sigma_w2"]) == 2.0 and float(row["sigma_b2"]) == 0.0)
    assert float(he["chi1"]) == pytest.approx(1.0)
    assert (tmp_path / "p" / "phase.png").stat().st_size > 0
    assert json.loads((tmp_path / "p" / "meta.json").read_text())["status"] == "complete"


def test_measured_convergence_tracks_the_prediction_in_the_ordered_phase(cli, tmp_path: Path) -> None:
    """Deep in the ordered phase the measured convergence depth is close to the linearized prediction."""
    result = cli("phase", "--activation", "tanh", "--sw2", "0.75:1.5:2", "--sb2", "0.1:0.3:2", "--measure", "--depth", "60", "--width", "256", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    with (tmp_path / "p" / "phase.csv").open() as stream:
        for row in csv.DictReader(stream):
            predicted, measured = float(row["predicted_depth"]), float(row["measured_depth"])
            assert abs(measured - predicted) <= max(3.0, 0.5 * predicted), row


@pytest.mark.parametrize("text", ["1:2", "a:b:3", "2:1:5", "0:1:1", "-1:1:3"])
def test_bad_grids_are_user_errors(cli, text: str) -> None:
    result = cli("phase", "--sw2", text)
    assert result.exit_code == 2
    assert "START:STOP:N" in result.stderr or "START < STOP" in result.stderr


def test_parse_grid() -> None:
    assert parse_grid("0:1:5", "--sw2").tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_phase_reports_unbounded_where_q_star_is_infinite(cli, tmp_path: Path) -> None:
    """elu: L(q) − q → σ_w²·α²/2 > 0 for σ_w² ≥ 2, so there is no fixed point to classify; gelu at
    σ_w² = 2.25 explodes from the measured nets' q¹ = σ_w² (see test_theory for the band)."""
    result = cli("phase", "--activation", "elu", "--sw2", "1:3:3", "--sb2", "0:0.1:2", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    with (tmp_path / "p" / "phase.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        unbounded = float(row["sigma_w2"]) >= 2
        assert (row["q_star"] == "inf") == unbounded, row
        assert (row["phase"] == "unbounded") == unbounded, row
    # σ_w² = 1: q* = 0 with χ₁ = σ_w²·elu'(0)² = 1 (critical) without bias, ordered with it.
    assert "1 ordered, 1 critical, 0 chaotic, 4 unbounded" in result.stdout
    gelu = ACTIVATIONS.get("gelu")()
    diagram = compute_phase_diagram(gelu, np.array([2.25]), np.array([0.0]))
    assert diagram.q_star[0, 0] == math.inf and diagram.phase[0, 0] == "unbounded"


def test_phase_and_gain_are_experiments_that_run_and_sweep(cli, tmp_path: Path) -> None:
    """``experiment: phase`` and ``experiment: gain`` configs run through ``initbench run`` and
    ``initbench sweep``, with the numbers of the ``phase`` and ``gain`` commands."""
    grid = ("--sw2", "1:3:5", "--sb2", "0:0.2:3")
    assert cli("phase", "--activation", "relu", *grid, "--depth", "10", "--width", "16", "--out", tmp_path / "command").exit_code == 0
    config = tmp_path / "command" / "config.yaml"
    assert "experiment: phase" in config.read_text()
    assert cli("run", config, "--out", tmp_path / "run").exit_code == 0
    expected = (tmp_path / "command" / "phase.csv").read_bytes()
    assert (tmp_path / "run" / "phase.csv").read_bytes() == expected
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["config.yaml", "meta.json", "phase.csv", "phase.png"]
    swept = cli("sweep", config, "model.activation=relu,tanh", "--out", tmp_path / "sweep")
    assert swept.exit_code == 0, swept.output
    assert (tmp_path / "sweep" / "points" / "activation-relu" / "phase.csv").read_bytes() == expected
    report = cli("report", tmp_path / "sweep")
    assert report.exit_code == 0 and "All 2 points complete." in report.stdout

    gain = tmp_path / "gain.yaml"
    gain.write_text("experiment: gain\nname: g\nmodel: {activation: tanh, depth: 10, width: 32}\ninput: {batch: 16}\ngain: {sb2: 0.05}\n")
    assert cli("run", gain, "--out", tmp_path / "gain").exit_code == 0
    printed = json.loads(cli("gain", "tanh", "--sb2", "0.05", "--json").stdout)
    assert json.loads((tmp_path / "gain" / "summary.json").read_text()) == printed
    with (tmp_path / "gain" / "gains.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["gain"] for row in rows] == ["preserving", "critical", "torch"]
    assert float(rows[2]["sigma_w"]) == pytest.approx(5 / 3)
    swept = cli("sweep", gain, "gain.sb2=0,0.1", "--out", tmp_path / "gain-sweep")
    assert swept.exit_code == 0 and "2 ran" in swept.stdout


def test_phase_settings_are_validated_like_any_config(cli, tmp_path: Path) -> None:
    config = tmp_path / "phase.yaml"
    config.write_text("experiment: phase\nphase: {sw2: '1:3'}\n")
    result = cli("run", config)
    assert result.exit_code == 2 and "phase.sw2 '1:3' is not START:STOP:N" in result.stderr
    config.write_text("experiment: phase\nphase: {mesure: true}\n")
    result = cli("run", config)
    assert result.exit_code == 2 and "phase.mesure: unknown key. Did you mean 'measure'?" in result.stderr
