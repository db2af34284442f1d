"""Sweeps: expansion, names, shards, resume, stacking against runs alone, reports and launchers."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from initbench.core.errors import InitbenchError
from initbench.runs.sweeps import MAX_NAME, Axis, Shard, Sweep, parse_axis, point_names, section_axes, stacks
from tests.conftest import read_csv, write_config

BASE = """
name: tiny
device: cpu
seeds: 2
model: {depth: 4, width: 16, activation: tanh}
init: {scheme: xavier_uniform, gain: auto}
input: {batch: 8}
"""

SAFE_NAME = re.compile(r"[A-Za-z0-9._+-]+")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_config(tmp_path / "base.yaml", BASE)


def points_on_disk(out: Path) -> set[str]:
    return {path.name for path in (out / "points").iterdir()}


def status(out: Path, point: str) -> str:
    return json.loads((out / "points" / point / "meta.json").read_text())["status"]


def index_names(out: Path) -> list[str]:
    return [point["name"] for point in json.loads((out / "sweep.json").read_text())["points"]]


# --- Axes and expansion (no runs) ---------------------------------------------------------


def test_axes_are_parsed_like_overrides() -> None:
    assert parse_axis("model.depth=10,30,100") == Axis("model.depth", (10, 30, 100))
    assert parse_axis("init.gain=auto, 1.5,1e-3") == Axis("init.gain", ("auto", 1.5, 0.001))
    assert parse_axis("model.bias=true,false") == Axis("model.bias", (True, False))
    # Values with commas: ';' between values, or a trailing ';' for a single one.
    assert parse_axis("init.scheme=normal:mean=0,std=2;he") == Axis("init.scheme", ("normal:mean=0,std=2", "he"))
    assert parse_axis("init.scheme=normal:mean=0,std=2;") == Axis("init.scheme", ("normal:mean=0,std=2",))
    assert parse_axis("init.scheme=normal:std=2,he") == Axis("init.scheme", ("normal:std=2", "he"))


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("model.depth", "Cannot read sweep axis"),
        ("model.depth=10,,30", "empty value"),
        ("init.scheme=normal:mean=0,std=2", "Separate values that contain commas with ';'"),
        ("model.depth=10,10", "lists 10 twice"),
        ("model..depth=1,2", "is not a config key"),
    ],
)
def test_bad_axes_are_user_errors(argument: str, message: str) -> None:
    with pytest.raises(InitbenchError) as error:
        parse_axis(argument)
    assert message in str(error.value)


def test_a_sweep_section_is_flattened_and_command_line_axes_replace_its_axes() -> None:
    assert section_axes({"model": {"depth": [3, 6]}, "init.scheme": ["he", "normal:mean=0,std=2"]}) == [
        Axis("model.depth", (3, 6)),
        Axis("init.scheme", ("he", "normal:mean=0,std=2")),
    ]
    with pytest.raises(InitbenchError, match="give a list of values"):
        section_axes({"model.depth": 10})


def test_expansion_is_the_grid_in_a_fixed_order(base: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "swept.yaml", BASE + "sweep:\n  model.depth: [2, 3]\n  model.activation: [tanh, relu]\n")
    sweep = Sweep.from_config(config, ["init.scheme=xavier,he", "model.activation=relu,linear"])
    # init axes vary slowest; the command line's model.activation replaces the section's.
    assert [axis.key for axis in sweep.axes] == ["init.scheme", "model.depth", "model.activation"]
    assert [point.name for point in sweep.points] == [
        f"scheme-{scheme}_depth-{depth}_activation-{activation}"
        for scheme in ("xavier", "he")
        for depth in (2, 3)
        for activation in ("relu", "linear")
    ]
    configs = sweep.configs()
    assert len(configs) == 8
    for point, point_config in zip(sweep.points, configs):
        assert point_config.model.depth == point.values["model.depth"]
        assert point_config.model.activation == point.values["model.activation"]
        assert point_config.init.scheme == point.values["init.scheme"]
        assert point_config.init.model_extra == {}, "overriding init.scheme drops the file's gain, as with initbench run"
        assert "sweep" not in point_config.to_yaml()
    # Points differing only in init stack: one stack per (depth, activation).
    assert stacks(configs, range(8)) == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_names_use_only_the_axes_that_vary_and_clash_free_hashes() -> None:
    axes = [
        Axis("init.scheme", ("normal:std=2", "normal;std=2")),
        Axis("model.depth", (5,)),
        Axis("init.bias", ("zeros",)),
        Axis("model.bias", (True,)),
    ]
    names = point_names(axes, [("normal:std=2", 5, "zeros", True), ("normal;std=2", 5, "zeros", True)])
    assert names[0] != names[1] and all(name.startswith("scheme-normal-std-2-") for name in names)
    # Shared last parts keep the full key; one-value sweeps name points by every axis.
    assert point_names([Axis("model.bias", (True, False)), Axis("init.bias", ("zeros", "default"))], [(True, "zeros")]) == [
        "model.bias-true_init.bias-zeros"
    ]
    assert point_names([Axis("model.depth", (7,))], [(7,)]) == ["depth-7"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab:,=/ _.é", min_size=1, max_size=60), min_size=1, max_size=8, unique=True))
def test_names_are_filesystem_safe_unique_and_short(values: list[str]) -> None:
    axis = Axis("init.scheme", tuple(values))
    names = point_names([axis], [(value,) for value in values])
    assert len(set(names)) == len(values)
    for name in names:
        assert SAFE_NAME.fullmatch(name) and len(name) <= MAX_NAME and not name.startswith(".")


@pytest.mark.parametrize("count", range(1, 8))
def test_shards_cover_every_point_exactly_once(count: int) -> None:
    chosen = [index for shard in range(count) for index in Shard(shard, count).select(11)]
    assert sorted(chosen) == list(range(11))
    assert Shard(count - 1, count).select(11) == list(range(count - 1, 11, count))


# --- Running sweeps --------------------------------------------------------------------------


def test_shards_share_one_directory_and_together_run_the_whole_grid(cli, base: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    axes = ("init.scheme=xavier,he", "model.depth=2,3")
    first = cli("sweep", base, *axes, "--out", out, "--shard", "0/3")
    assert first.exit_code == 0, first.output
    assert "Shard 0/3: 2 ran" in first.stdout
    names = index_names(out)
    assert names == ["scheme-xavier_depth-2", "scheme-xavier_depth-3", "scheme-he_depth-2", "scheme-he_depth-3"]
    assert points_on_disk(out) == {names[0], names[3]}
    for shard in ("1/3", "2/3"):
        result = cli("sweep", base, *axes, "--out", out, "--shard", shard)
        assert result.exit_code == 0, result.output
        assert "Skipped" not in result.stdout and "1 ran, 0 already complete" in result.stdout, "shards are disjoint"
    assert points_on_disk(out) == set(names)
    assert all(status(out, name) == "complete" for name in names)
    assert (out / "base.yaml").read_text().startswith("name: tiny")


def test_rerun_skips_complete_points_and_retries_failed_ones_keeping_them(
    cli, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from initbench.experiments import propagation

    out = tmp_path / "sw"
    axes = ("init.scheme=xavier,he", "model.depth=2,3")
    original = propagation.measure_net

    def fail_at_depth_3(net, context, *args, **kwargs):
        if context.config.model.depth == 3:
            raise RuntimeError("disk on fire")
        return original(net, context, *args, **kwargs)

    monkeypatch.setattr(propagation, "measure_net", fail_at_depth_3)
    failed = cli("sweep", base, *axes, "--out", out)
    assert failed.exit_code == 1, failed.output
    assert "The stacked pass failed (RuntimeError: disk on fire); running its points one at a time." in failed.stdout
    assert "Failed scheme-xavier_depth-3: RuntimeError: disk on fire" in failed.stdout
    assert "Failed scheme-he_depth-3: RuntimeError: disk on fire" in failed.stdout
    assert "2 ran" in failed.stdout and "2 failed" in failed.stdout
    meta = json.loads((out / "points" / "scheme-he_depth-3" / "meta.json").read_text())
    assert meta["status"] == "failed" and "disk on fire" in meta["error"]
    assert meta["stacked_with"] == ["scheme-xavier_depth-3"] and meta["point"] == "scheme-he_depth-3"
    done = (out / "points" / "scheme-he_depth-2" / "layer_stats.csv").read_bytes()

    monkeypatch.setattr(propagation, "measure_net", original)
    rerun = cli("sweep", base, *axes, "--out", out)
    assert rerun.exit_code == 0, rerun.output
    assert "Skipped scheme-xavier_depth-2: already complete." in rerun.stdout
    assert "Skipped scheme-he_depth-2: already complete." in rerun.stdout
    assert "Moved the failed attempt at scheme-he_depth-3 aside to scheme-he_depth-3.failed-1" in rerun.stdout
    assert "2 ran, 2 already complete" in rerun.stdout
    assert (out / "points" / "scheme-he_depth-2" / "layer_stats.csv").read_bytes() == done, "a complete point is never rewritten"
    assert json.loads((out / "points" / "scheme-he_depth-3.failed-1" / "meta.json").read_text())["error"] == "RuntimeError: disk on fire"
    assert status(out, "scheme-he_depth-3") == "complete"

    again = cli("sweep", out)  # resume from the directory alone
    assert again.exit_code == 0 and "0 ran, 4 already complete" in again.stdout


def test_a_point_running_in_a_live_process_is_left_alone(cli, base: Path, tmp_path: Path) -> None:
    import socket

    out = tmp_path / "sw"
    assert cli("sweep", base, "model.depth=2,3", "--out", out, "--shard", "0/2").exit_code == 0
    busy = out / "points" / "depth-3"
    busy.mkdir()
    (busy / "meta.json").write_text(json.dumps({"status": "running", "host": socket.gethostname(), "pid": os.getppid()}))
    result = cli("sweep", out)
    assert result.exit_code == 0, result.output
    assert f"Skipped depth-3: still running in process {os.getppid()} on this host." in result.stdout
    assert sorted(path.name for path in (out / "points").iterdir()) == ["depth-2", "depth-3"]


def test_stacked_points_equal_their_runs_alone(cli, base: Path, tmp_path: Path) -> None:
    """CPU-vs-alone determinism: each point of a stacked sweep against `initbench run` of its config."""
    out = tmp_path / "sw"
    result = cli(
        "sweep", base, "init.scheme=he,normal:std=2", "model.activation=tanh,relu", "experiment=gradients", "dtype=float64", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("stacked: 2 points in one pass") == 2
    sweep = json.loads((out / "sweep.json").read_text())
    assert [entry["name"] for entry in sweep["points"]] == [
        "scheme-he_activation-tanh",
        "scheme-he_activation-relu",
        "scheme-normal-std-2_activation-tanh",
        "scheme-normal-std-2_activation-relu",
    ]
    for entry in sweep["points"][1:3]:  # one point of each stack
        point = out / "points" / entry["name"]
        alone = tmp_path / f"alone-{entry['name']}"
        assert cli("run", point / "config.yaml", "--out", alone, "-q").exit_code == 0
        swept, single = read_csv(point / "layer_stats.csv"), read_csv(alone / "layer_stats.csv")
        assert len(swept) == len(single) == 2 * 4 and list(swept[0]) == list(single[0])
        for a, b in zip(swept, single):
            assert (a["scheme"], a["seed"], a["layer"]) == (b["scheme"], b["seed"], b["layer"])
            for column in ("mean", "std", "pre_std", "grad_std", "weight_grad_std", "theory_std"):
                assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-12, abs=1e-300)
        summary = json.loads((point / "summary.json").read_text())["schemes"]
        single_summary = json.loads((alone / "summary.json").read_text())["schemes"]
        assert list(summary) == list(single_summary) == [entry["values"]["init.scheme"]]
        for label, values in summary.items():
            for key in ("std_last", "grad_std_first", "grad_ratio"):
                assert values[key] == pytest.approx(single_summary[label][key], rel=1e-12)
            assert (values["verdict"], values["grad_verdict"], values["theory"]) == (
                single_summary[label]["verdict"],
                single_summary[label]["grad_verdict"],
                single_summary[label]["theory"],
            )
    # The index's overrides on base.yaml make the same config.
    entry = sweep["points"][2]
    assert cli("run", out / "base.yaml", *entry["overrides"], "--out", tmp_path / "again", "-q").exit_code == 0
    assert (tmp_path / "again" / "config.yaml").read_text() == (out / "points" / entry["name"] / "config.yaml").read_text()


def test_an_unstacked_point_is_byte_identical_to_its_run_alone(cli, base: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    assert cli("sweep", base, "model.depth=2,5", "--out", out, "-q").exit_code == 0
    point = out / "points" / "depth-5"
    assert cli("run", point / "config.yaml", "--out", tmp_path / "alone", "-q").exit_code == 0
    for name in ("config.yaml", "layer_stats.csv", "histograms.csv", "summary.json"):
        assert (point / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name


def test_training_points_stack_and_equal_their_runs_alone(cli, tmp_path: Path) -> None:
    """Training points that differ only in init train as one stacked model; each point's curves
    equal its run alone (float64, so to rounding), and the decision regions are split per point."""
    config = write_config(
        tmp_path / "train.yaml",
        "name: t\nexperiment: train\ndevice: cpu\ndtype: float64\nseeds: 2\nmodel: {hidden: [4], activation: relu}\ninit: {scheme: he}\n"
        "train: {dataset: xor, steps: 20, lr: 0.1, eval_every: 10}\nsweep:\n  init.scheme: [zeros, he]\n",
    )
    out = tmp_path / "sw"
    result = cli("sweep", config, "--out", out)
    assert result.exit_code == 0, result.output
    assert "stacked: 2 points in one pass" in result.stdout and "2 ran" in result.stdout
    for name in ("scheme-zeros", "scheme-he"):
        point = out / "points" / name
        alone = tmp_path / f"alone-{name}"
        assert cli("run", point / "config.yaml", "--out", alone, "-q").exit_code == 0
        swept, single = read_csv(point / "train_metrics.csv"), read_csv(alone / "train_metrics.csv")
        assert len(swept) == len(single) == 2 * 3
        for a, b in zip(swept, single):
            assert (a["scheme"], a["seed"], a["step"]) == (b["scheme"], b["seed"], b["step"])
            for column in ("loss", "train_acc", "test_acc"):
                assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-12)
        assert json.loads((point / "summary.json").read_text())["schemes"] == json.loads((alone / "summary.json").read_text())["schemes"]
        assert (point / "decision_boundary.png").is_file()
    report = cli("report", out, "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    rows = read_csv(tmp_path / "report" / "sweep_results.csv")
    assert [row["scheme"] for row in rows] == ["zeros", "he"]
    assert {"test_acc", "train_acc", "loss", "diverged"} <= set(rows[0])
    assert (
        float(rows[0]["test_acc"])
        == json.loads((out / "points" / "scheme-zeros" / "summary.json").read_text())["schemes"]["zeros"]["test_acc"]["median"]
    )
    assert (tmp_path / "report" / "heatmap.png").is_file()


# --- Reports ----------------------------------------------------------------------------------


def test_report_merges_finished_shards_and_lists_missing_points(cli, base: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    axes = ("init.scheme=xavier,normal:std=3", "model.activation=tanh,relu", "model.depth=2,4")
    assert cli("sweep", base, *axes, "--out", out, "--shard", "0/2").exit_code == 0
    names = index_names(out)
    partial = cli("report", out)
    assert partial.exit_code == 0, partial.output
    assert "Missing 4 of 8 points:" in partial.stdout
    for name in names[1::2]:
        assert f"  {name} (missing)" in partial.stdout
    for name in names[::2]:
        assert f"  {name} (" not in partial.stdout
    report_dir = Path(partial.stdout.strip().splitlines()[-1].removeprefix("Report: "))
    assert report_dir.parent == out and report_dir.name.startswith("report-")
    rows = read_csv(report_dir / "sweep_results.csv")
    assert {row["point"] for row in rows} == set(names[::2])
    assert list(rows[0])[:7] == ["point", "scheme", "experiment", "activation", "depth", "width", "seeds"]
    assert {"std_last", "verdict", "first_nonfinite_layer"} <= set(rows[0])
    assert "## Missing points (4)" in (report_dir / "report.md").read_text()

    assert cli("sweep", base, *axes, "--out", out, "--shard", "1/2").exit_code == 0
    final = cli("report", out, "--out", tmp_path / "final")
    assert final.exit_code == 0 and "All 8 points complete." in final.stdout
    rows = read_csv(tmp_path / "final" / "sweep_results.csv")
    assert [row["point"] for row in rows] == names
    for row in rows:
        summary = json.loads((out / "points" / row["point"] / "summary.json").read_text())["schemes"][row["scheme"]]
        assert float(row["std_last"]) == summary["std_last"] and row["verdict"] == summary["verdict"]
    assert {row["verdict"] for row in rows if row["scheme"] == "normal:std=3" and row["activation"] == "relu"} == {"exploding"}
    for figure in ("std_last_by_depth.png", "heatmap.png"):
        assert (tmp_path / "final" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](heatmap.png)" in (tmp_path / "final" / "report.md").read_text()
    assert (tmp_path / "final" / "report.html").read_text().count('<img src="data:image/png;base64,') == 2


def test_report_on_a_directory_that_is_neither_a_run_nor_a_sweep_exits_2(cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("report", empty)
    assert result.exit_code == 2 and "neither a run nor a sweep directory" in result.stderr
    assert list(empty.iterdir()) == []


# --- Bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "messages"),
    [
        (("model.depht=2,3",), ["model.depht: unknown key", "Did you mean 'depth'"]),
        (("model.depth=2,0",), ["sweep point 'depth-0' (model.depth=0)", "greater than or equal to 1"]),
        (("init.scheme=he,xaviar", "model.depth=2,3"), ["Unknown scheme 'xaviar'", "1 more of the sweep's 4 points are invalid"]),
        (("model.depth=2,3", "--shard", "2/2", "--out", "x"), ["--shard 2/2", "0 ≤ I < N"]),
        (("model.depth=2,3", "--shard", "one/two", "--out", "x"), ["--shard one/two"]),
        (("model.depth=2,3", "--shard", "0/2"), ["--shard needs --out"]),
        (("model.depth=2,3", "--launcher", "slurm"), ["Unknown launcher 'slurm'"]),
        (("model.depth=2,3", "--launcher", "submitit", "--shard", "0/2", "--out", "x"), ["--shard goes with --launcher local"]),
        ((), ["Nothing to sweep"]),
    ],
)
def test_bad_sweeps_exit_2_before_anything_runs(cli, base: Path, tmp_path: Path, args: tuple[str, ...], messages: list[str]) -> None:
    result = cli("sweep", base, *args)
    assert result.exit_code == 2, result.output
    for message in messages:
        assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists() and not (tmp_path / "x").exists(), "a refused sweep writes nothing"


def test_run_explains_a_config_with_a_sweep_section(cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "swept.yaml", BASE + "sweep: {model.depth: [2, 3]}\n")
    result = cli("run", config)
    assert result.exit_code == 2 and "has a sweep: section" in result.stderr and f"initbench sweep {config}" in result.stderr


def test_one_directory_holds_one_sweep(cli, base: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    assert cli("sweep", base, "model.depth=2,3", "--out", out, "--shard", "0/2").exit_code == 0
    other = cli("sweep", base, "model.depth=2,4", "--out", out, "--shard", "1/2")
    assert other.exit_code == 2 and "holds a different sweep" in other.stderr and "axes, points" in other.stderr
    racing = tmp_path / "racing"  # another shard made the folder and is writing its index right now
    racing.mkdir()
    (racing / ".sweep.json.x1y2.tmp").write_text("{")
    assert cli("sweep", base, "model.depth=2,3", "--out", racing, "--shard", "1/2", "-q").exit_code == 0
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "precious.csv").write_text("data")
    taken = cli("sweep", base, "model.depth=2,3", "--out", tmp_path / "taken")
    assert taken.exit_code == 2 and "is not a sweep directory" in taken.stderr
    assert [path.name for path in (tmp_path / "taken").iterdir()] == ["precious.csv"]


# --- Launchers ----------------------------------------------------------------------------------


def test_submitit_job_array_runs_the_shards(cli, base: Path, tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    out = tmp_path / "sw"
    axes = ("init.scheme=xavier,he", "model.depth=2,3")
    result = cli("sweep", base, *axes, "--out", out, "--launcher", "submitit-local", "--wait")
    assert result.exit_code == 0, result.output
    assert "Submitted 2 jobs" in result.stdout, "default: one job per stack of points"
    assert "2 of 2 jobs succeeded." in result.stdout
    assert all(status(out, name) == "complete" for name in index_names(out))
    logs = sorted((out / "submitit").glob("*_log.out"))
    assert len(logs) == 2 and all("stacked: 2 points in one pass" in log.read_text() for log in logs)
    meta = json.loads((out / "points" / "scheme-he_depth-3" / "meta.json").read_text())
    assert meta["command"] == [Path(sys.argv[0]).name, *sys.argv[1:]], "jobs record the submitting command, not submitit's worker"


def test_submitit_missing_is_a_user_error(cli, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    result = cli("sweep", base, "model.depth=2,3", "--out", tmp_path / "sw", "--launcher", "submitit")
    assert result.exit_code == 2
    assert 'pip install "initbench[cluster]"' in result.stderr
