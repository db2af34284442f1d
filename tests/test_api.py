"""The Python API: the same run directory as the CLI for the same arguments, plain data back,
user errors as exceptions, silence unless asked, and ``import initbench`` kept light."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import initbench
from initbench.cli.app import app
from initbench.core.errors import InitbenchError
from tests.conftest import REPO, read_csv

SMALL = {"name": "small", "experiment": "gradients", "model": {"depth": 6, "width": 24, "activation": "tanh"}, "input": {"batch": 32}}


def cli(*args: object) -> None:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output


def same_files(api_dir: Path, cli_dir: Path, names: tuple[str, ...]) -> None:
    for name in names:
        assert (api_dir / name).read_bytes() == (cli_dir / name).read_bytes(), name


def test_import_initbench_loads_neither_torch_nor_matplotlib() -> None:
    code = "import sys, initbench; from initbench import run, compare, probe; print(sorted(m for m in ('torch', 'matplotlib', 'pandas') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True, env={"PYTHONPATH": str(REPO)})
    assert result.stdout.strip() == "[]"


def test_run_writes_what_the_cli_writes_and_returns_it_as_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "small.yaml"
    config.write_text("name: small\nexperiment: gradients\nmodel: {depth: 6, width: 24, activation: tanh}\ninput: {batch: 32}\n")
    result = initbench.run(config, ["init.scheme=xavier_normal"], seeds=2, out=tmp_path / "api")
    assert capsys.readouterr() == ("", "")  # quiet by default: no progress bar, no table
    cli("run", config, "init.scheme=xavier_normal", "--seeds", "2", "--out", tmp_path / "cli", "-q")
    same_files(tmp_path / "api", tmp_path / "cli", ("config.yaml", "layer_stats.csv", "histograms.csv", "summary.json"))
    assert result.path == tmp_path / "api" and result.status == "complete" and result.experiment == "gradients"
    rows = read_csv(tmp_path / "cli" / "layer_stats.csv")
    assert len(result.layer_stats) == len(rows) == 2 * 6
    for mine, reference in zip(result.layer_stats, rows, strict=True):
        assert mine["seed"] == int(reference["seed"]) and mine["std"] == float(reference["std"]) and mine["grad_std"] == float(reference["grad_std"])
    assert result.schemes["xavier_normal"]["std_last"] == result.summary["schemes"]["xavier_normal"]["std_last"] > 0


def test_a_mapping_config_is_the_same_as_its_file(tmp_path: Path) -> None:
    from_mapping = initbench.run(SMALL, out=tmp_path / "mapping")
    (tmp_path / "small.yaml").write_text("name: small\nexperiment: gradients\nmodel: {depth: 6, width: 24, activation: tanh}\ninput: {batch: 32}\n")
    from_file = initbench.run(tmp_path / "small.yaml", out=tmp_path / "file")
    same_files(from_mapping.path, from_file.path, ("config.yaml", "layer_stats.csv"))
    assert SMALL["model"] == {"depth": 6, "width": 24, "activation": "tanh"}  # the caller's mapping is left as it was


def test_compare_with_non_finite_results_matches_the_cli_and_reads_back_nan(tmp_path: Path) -> None:
    result = initbench.compare(["he", "random"], activation="linear", depth=50, width=64, batch=8, out=tmp_path / "api")
    cli("compare", "he", "random", "--activation", "linear", "--depth", "50", "--width", "64", "--batch", "8", "--out", tmp_path / "cli", "-q")
    same_files(tmp_path / "api", tmp_path / "cli", ("config.yaml", "layer_stats.csv", "summary.json"))
    last = [row["std"] for row in read_csv(tmp_path / "cli" / "layer_stats.csv") if row["scheme"] == "random" and row["layer"] == "50"]
    assert last == ["nan"]
    assert math.isnan(result.schemes["random"]["std_last"]) and math.isfinite(result.schemes["he"]["std_last"])
    assert math.isnan(result.layer_stats[-1]["std"])


def test_probe_matches_the_cli(tmp_path: Path) -> None:
    result = initbench.probe("tests.probe_models:small_mlp", input_shape=(16, 5), schemes=["he", "default"], out=tmp_path / "api")
    cli("probe", "tests.probe_models:small_mlp", "--input-shape", "16,5", "--scheme", "he", "--scheme", "default", "--out", tmp_path / "cli", "-q")
    same_files(tmp_path / "api", tmp_path / "cli", ("config.yaml", "layer_stats.csv", "summary.json"))
    assert [module["module"] for module in result.summary["modules"]] == ["0", "1", "2"]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda out: initbench.run({"model": {"depth": -1}}, out=out), "model.depth"),
        (lambda out: initbench.run(Path("no/such/config.yaml"), out=out), "does not exist"),
        (lambda out: initbench.run(SMALL, ["model.depth"], out=out), "Cannot read override"),
        (lambda out: initbench.compare(["no_such_scheme"], out=out), "no_such_scheme"),
        (lambda out: initbench.compare("he", steps=10, out=out), "only experiment train uses them"),
        (lambda out: initbench.compare("he", experiment="train", lr=math.nan, out=out), "finite"),
        (lambda out: initbench.probe("tests.probe_models:small_mlp", input_shape=(0, 5), out=out), "input_shape"),
        (lambda out: initbench.probe("tests.probe_models:small_mlp", experiment="train", out=out), "forward or gradients"),
    ],
)
def test_bad_input_raises_initbench_error_and_writes_nothing(call, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InitbenchError, match=words.replace("(", r"\(")):
        call(tmp_path / "out")
    assert not (tmp_path / "out").exists() and capsys.readouterr() == ("", "")


def test_an_out_that_holds_results_is_refused_not_overwritten(tmp_path: Path) -> None:
    first = initbench.run(SMALL, out=tmp_path / "r")
    before = (first.path / "layer_stats.csv").read_bytes()
    with pytest.raises(InitbenchError, match="never overwrites"):
        initbench.run(SMALL, ["seed=1"], out=tmp_path / "r")
    assert (first.path / "layer_stats.csv").read_bytes() == before


def test_frames_need_pandas_and_say_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = initbench.run(SMALL, out=tmp_path / "r")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(InitbenchError) as error:
        result.layer_stats_frame()
    assert "pip install pandas" in str(error.value.hint)


def test_frames_hold_the_csv_and_summary_values(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    result = initbench.compare(["he", "random"], activation="linear", depth=50, width=64, batch=8, seeds=2, out=tmp_path / "c")
    reference = pandas.read_csv(tmp_path / "c" / "layer_stats.csv")  # pandas' own reader as the reference
    frame = result.layer_stats_frame()
    assert list(frame.columns) == list(reference.columns) and len(frame) == len(reference)
    pandas.testing.assert_series_equal(frame["std"], reference["std"], check_exact=True)
    assert frame["std"].isna().sum() == reference["std"].isna().sum() > 0
    summary = result.summary_frame()
    assert list(summary.index) == ["he", "random"]
    assert math.isnan(summary.loc["random", "std_last"]) and summary.loc["he", "std_last"] == result.schemes["he"]["std_last"]
    assert summary.loc["he", "theory.chi1"] == result.schemes["he"]["theory"]["chi1"]


def test_report_writes_what_initbench_report_writes(tmp_path: Path) -> None:
    from initbench.api import report

    result = initbench.run(SMALL, out=tmp_path / "r")
    folder = report(result.path, out=tmp_path / "api-report")
    cli("report", result.path, "--out", tmp_path / "cli-report", "-q")
    same_files(folder, tmp_path / "cli-report", ("summary.csv", "summary_gradients.csv", "theory.csv", "std_by_layer.png", "report.md"))
    assert not initbench.load(result.path).tables.keys() & {"summary.csv", "theory.csv"}  # the run directory itself is unchanged


def test_compare_takes_overrides_like_the_command(tmp_path: Path) -> None:
    result = initbench.compare(["he", "fixup"], ["model.arch=resmlp"], depth=3, width=8, batch=8, out=tmp_path / "r")
    assert result.config["model"]["arch"] == "resmlp" and list(result.summary["schemes"]) == ["he", "fixup"]


def test_load_refuses_a_report_folder(tmp_path: Path) -> None:
    import initbench.api

    initbench.compare("he", depth=2, width=4, batch=4, out=tmp_path / "run")
    folder = initbench.api.report(tmp_path / "run")
    with pytest.raises(InitbenchError, match="is a report"):
        initbench.load(folder)
