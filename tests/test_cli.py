"""The command line: exit codes, messages, and the run directory it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from initbench.schemes.base import SCHEMES
from tests.conftest import read_csv, write_config

TINY = """
name: tiny
seeds: 2
device: cpu
model: {depth: 6, width: 16, activation: tanh}
init: {scheme: xavier_uniform, gain: auto}
input: {batch: 8}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_config(tmp_path / "tiny.yaml", TINY)


def test_run_writes_a_complete_run_directory(cli, tiny: Path, tmp_path: Path) -> None:
    result = cli("run", tiny, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert f"Results: {out}" in result.stdout
    expected = {"config.yaml", "meta.json", "layer_stats.csv", "histograms.csv", "summary.json", "summary.md", "std_by_layer.png", "histograms.png"}
    assert expected <= {path.name for path in out.iterdir()}
    rows = read_csv(out / "layer_stats.csv")
    assert list(rows[0]) == [
        "scheme", "activation", "seed", "layer", "module", "module_type", "mean", "std", "pre_std", "frac_saturated", "frac_zero",
        "weight_mean", "weight_std", "fan_in", "theory_std", "theory_pre_std", "chi1",
    ]
    assert len(rows) == 2 * 6
    assert {(row["seed"], row["layer"]) for row in rows} == {(str(seed), str(layer)) for seed in (0, 1) for layer in range(1, 7)}
    summary = json.loads((out / "summary.json").read_text())["schemes"]["xavier_uniform:gain=auto"]
    assert summary["first_nonfinite_layer"] is None and summary["first_nonfinite_layer_per_seed"] == [None, None]
    assert summary["verdict"] in {"stable", "vanishing", "exploding", "saturated", "dead"}
    assert summary["sigma_w2"] == pytest.approx(25 / 9)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["device"] == "cpu" and meta["torch"] == torch.__version__
    assert meta["wall_seconds"] > 0
    assert (out / "std_by_layer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Activation std by layer](std_by_layer.png)" in (out / "summary.md").read_text()


def test_std_column_is_the_std_of_the_activations(cli, tiny: Path, tmp_path: Path) -> None:
    """Layer 1's std recomputed by hand from the same generator draws."""
    assert cli("run", tiny, "--out", tmp_path / "out", "model.depth=1", "seeds=1").exit_code == 0
    from initbench.core.runtime import derive_seed

    x = torch.empty(8, 16).normal_(generator=torch.Generator().manual_seed(derive_seed(0, "input")))
    bound = (5 / 3) * (6 / 32) ** 0.5
    weight = torch.empty(16, 16).uniform_(-bound, bound, generator=torch.Generator().manual_seed(0))
    expected = torch.tanh(x @ weight.T).double().std(correction=0).item()
    assert float(read_csv(tmp_path / "out" / "layer_stats.csv")[0]["std"]) == pytest.approx(expected, rel=1e-6)


def test_rerunning_the_saved_config_reproduces_the_numbers_exactly(cli, tiny: Path, tmp_path: Path) -> None:
    assert cli("run", tiny, "--out", tmp_path / "a", "model.depth=4").exit_code == 0
    assert cli("run", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b").exit_code == 0
    assert (tmp_path / "a" / "layer_stats.csv").read_bytes() == (tmp_path / "b" / "layer_stats.csv").read_bytes()


def test_a_compare_reruns_from_its_config(cli, tmp_path: Path) -> None:
    args = ("compare", "zeros", "normal:std=0.3", "--depth", "5", "--width", "8", "--batch", "4", "--device", "cpu")
    assert cli(*args, "--out", tmp_path / "a").exit_code == 0
    assert cli("run", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b").exit_code == 0
    assert (tmp_path / "a" / "layer_stats.csv").read_bytes() == (tmp_path / "b" / "layer_stats.csv").read_bytes()


def test_a_run_alone_matches_the_same_run_inside_compare(cli, tiny: Path, tmp_path: Path) -> None:
    assert cli("run", tiny, "--out", tmp_path / "alone", "init.scheme=he").exit_code == 0
    assert cli("compare", "random", "he", "zeros", "--config", tiny, "--out", tmp_path / "together").exit_code == 0
    alone = read_csv(tmp_path / "alone" / "layer_stats.csv")
    together = [row for row in read_csv(tmp_path / "together" / "layer_stats.csv") if row["scheme"] == "he"]
    assert len(alone) == len(together) == 12
    for a, b in zip(alone, together):
        assert (a["seed"], a["layer"]) == (b["seed"], b["layer"])
        for column in ("mean", "std", "pre_std", "frac_saturated", "frac_zero"):
            assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-5, abs=1e-7)


def test_default_directory_is_under_results_and_never_reused(cli, tiny: Path, tmp_path: Path) -> None:
    first, second = cli("run", tiny, "-q"), cli("run", tiny, "-q")
    assert first.exit_code == second.exit_code == 0
    runs = sorted((tmp_path / "results").iterdir())
    assert len(runs) == 2 and all(path.name.startswith("tiny-") for path in runs)


def test_compare_overlays_schemes_with_their_labels(cli, tmp_path: Path) -> None:
    result = cli("compare", "zeros", "random", "xavier", "he", "--depth", "40", "--width", "64", "--batch", "32", "--activation", "linear", "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    schemes = json.loads((tmp_path / "c" / "summary.json").read_text())["schemes"]
    assert list(schemes) == ["zeros", "random", "xavier", "he"]
    assert schemes["zeros"]["verdict"] == "dead"
    assert schemes["random"]["verdict"] == "exploding"
    for label in schemes:
        assert label in result.stdout


def test_non_finite_values_are_results(cli, tmp_path: Path) -> None:
    result = cli("compare", "random", "--activation", "linear", "--depth", "60", "--width", "64", "--batch", "8", "--out", tmp_path / "c")
    assert result.exit_code == 0
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())["schemes"]["random"]
    assert summary["first_nonfinite_layer"] is not None and summary["std_last"] is None and summary["std_last_nonfinite"] == "nan"
    rows = read_csv(tmp_path / "c" / "layer_stats.csv")
    assert rows[-1]["std"] == "nan"


def test_version_and_list(cli) -> None:
    assert cli("--version").stdout.startswith("initbench ")
    listing = cli("list", "schemes")
    assert listing.exit_code == 0
    for name, _ in SCHEMES:
        assert name in listing.stdout
    assert "gain²·2/(fan_in + fan_out)" in listing.stdout
    assert "softsign" in cli("list", "activations").stdout
    bad = cli("list", "shemes")
    assert bad.exit_code == 2 and "Did you mean 'schemes'" in bad.stderr


BAD_CONFIGS = [
    ("model:\n  depth: 3\n  width: [1\n", ["YAML syntax error", "line 4"]),
    ("modle: {depth: 3}\n", ["modle", "Did you mean 'model'"]),
    ("model: {depht: 3}\n", ["model.depht", "Did you mean 'depth'"]),
    ("model: {depth: three}\n", ["model.depth", "valid integer"]),
    ("model: {depth: 0}\n", ["model.depth", "greater than or equal to 1"]),
    ("model: {width: -5}\n", ["model.width", "greater than or equal to 1"]),
    ("input: {batch: 0}\n", ["input.batch", "greater than or equal to 1"]),
    ("seeds: 0\n", ["seeds", "greater than or equal to 1"]),
    ("init: {scheme: xaviar}\n", ["Unknown scheme 'xaviar'", "Did you mean 'xavier'", "kaiming_normal"]),
    ("init: {scheme: normal, sdt: 1}\n", ["sdt", "Did you mean 'std'"]),
    ("model: {activation: rleu}\n", ["Unknown activation 'rleu'", "Did you mean 'relu'", "tanh"]),
    ("name: ../../etc\n", ["name", "pattern"]),
    ("experiment: forwrd\n", ["Unknown experiment 'forwrd'", "Did you mean 'forward'"]),
    ("model: {width: 200000}\ninput: {batch: 200000}\n", ["needs about", "GiB", "free"]),
    ("- just\n- a list\n", ["must be a mapping"]),
]


@pytest.mark.parametrize(("text", "messages"), BAD_CONFIGS)
def test_bad_configs_exit_2_with_a_clear_message(cli, tmp_path: Path, text: str, messages: list[str]) -> None:
    config = write_config(tmp_path / "bad.yaml", text)
    result = cli("run", config, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    for message in messages:
        assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists(), "a refused run must leave nothing behind"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "missing.yaml"), "does not exist"),
        (("run", "{tiny}", "model.depth"), "KEY=VALUE"),
        (("run", "{tiny}", "model.depth=0"), "greater than or equal to 1"),
        (("compare", "he", "--activation", "tahn"), "Did you mean 'tanh'"),
        (("compare", "he", "he"), "twice"),
        (("compare", "xavier:gian=auto"), "Did you mean 'gain'"),
    ],
)
def test_bad_command_lines_exit_2(cli, tiny: Path, args: tuple[str, ...], message: str) -> None:
    result = cli(*(arg.replace("{tiny}", str(tiny)) for arg in args))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_user_error(cli, tiny: Path) -> None:
    result = cli("run", tiny, "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA device" in result.stderr


def test_out_never_overwrites(cli, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.csv").write_text("data")
    result = cli("run", tiny, "--out", out)
    assert result.exit_code == 2 and "never overwrites" in result.stderr
    assert [path.name for path in out.iterdir()] == ["precious.csv"]
    empty = tmp_path / "empty_is_fine"
    empty.mkdir()
    assert cli("run", tiny, "--out", empty).exit_code == 0
    assert json.loads((empty / "meta.json").read_text())["status"] == "complete"


def test_interrupted_and_failed_runs_say_so(cli, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from initbench.experiments import propagation

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(propagation, "measure_net", interrupt)
    result = cli("run", tiny, "--out", tmp_path / "i")
    assert result.exit_code == 130 and "Interrupted" in result.stderr
    assert json.loads((tmp_path / "i" / "meta.json").read_text())["status"] == "interrupted"

    def fail(*args, **kwargs):
        raise RuntimeError("out of luck")

    monkeypatch.setattr(propagation, "measure_net", fail)
    result = cli("run", tiny, "--out", tmp_path / "f")
    assert result.exit_code == 1 and "RuntimeError: out of luck" in result.stderr and "Traceback" not in result.output
    meta = json.loads((tmp_path / "f" / "meta.json").read_text())
    assert meta["status"] == "failed" and "out of luck" in meta["error"]


def test_help_does_not_import_torch() -> None:
    code = "import sys; from initbench.cli.app import app; sys.argv = ['initbench', '--help']\ntry:\n    app()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("False")
    assert "compare" in result.stdout
