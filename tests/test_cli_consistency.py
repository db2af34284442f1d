"""What a person sees: every command's flags, errors, help, threads and progress, the same way.

Errors are checked against the flag the user typed (not the config key behind it), help against a
fixed 80-column render, threads against torch's own count, progress against a recorder that
counts what each experiment reports.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from initbench.cli.app import app
from initbench.outputs.console import RichProgress
from tests.conftest import read_csv, write_config

TINY = "name: tiny\nseeds: 2\ndevice: cpu\nmodel: {depth: 3, width: 8, activation: tanh}\ninit: {scheme: he}\ninput: {batch: 4}\n"
SMALL = ("--depth", "3", "--width", "8", "--batch", "4", "--device", "cpu")
RUNNING_COMMANDS = ("run", "compare", "probe", "sweep", "gain", "phase")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_config(tmp_path / "tiny.yaml", TINY)


@pytest.fixture
def torch_threads():
    """Commands set torch's thread count for the whole process: put it back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def fill(args: tuple[str, ...], tiny: Path) -> list[str]:
    return [arg.replace("{tiny}", str(tiny)) for arg in args]


def assert_user_error(result, *names: str) -> None:
    """Exit 2 and initbench's layout: ``Error: ...`` first, no traceback, no Typer panel."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and "╭" not in result.stderr
    for name in names:
        assert name in result.stderr, (name, result.stderr)


# --- Errors name what the user typed -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag", "key"),
    [
        (("run", "{tiny}", "--seeds", "0"), "--seeds", "seeds"),
        (("compare", "he", "--depth", "0"), "--depth", "model.depth"),
        (("compare", "he", "--depth", "-3"), "--depth", "model.depth"),
        (("compare", "he", "--width", "0"), "--width", "model.width"),
        (("compare", "he", "--batch", "0"), "--batch", "input.batch"),
        (("compare", "he", "--config", "{tiny}", "--seeds", "0"), "--seeds", "seeds"),
        (("compare", "he", "--experiment", "train", "--steps", "0"), "--steps", "train.steps"),
        (("compare", "he", "--experiment", "train", "--lr", "-1"), "--lr", "train.lr"),
        (("probe", "torch.nn:Linear", "model.kwargs.in_features=4", "model.kwargs.out_features=4", "--input-shape", "2,4", "--seeds", "0"), "--seeds", "seeds"),
        (("sweep", "{tiny}", "model.depth=1,2", "--seeds", "0", "--dry-run"), "--seeds", "seeds"),
        (("phase", "--depth", "0"), "--depth", "model.depth"),
        (("phase", "--sb2", "-1"), "--sb2", "phase.sb2"),
        (("gain", "tanh", "--sb2", "-1"), "--sb2", "gain.sb2"),
    ],
)
def test_a_bad_flag_is_named_as_the_flag(cli, tiny: Path, args: tuple[str, ...], flag: str, key: str) -> None:
    result = cli(*fill(args, tiny))
    assert_user_error(result, flag)
    assert f"- {key}:" not in result.stderr and "built-in defaults" not in result.stderr


def test_an_override_is_named_as_typed_beside_a_flag(cli) -> None:
    result = cli("compare", "he", "model.depth=0", "--width", "0")
    assert_user_error(result, "  - model.depth:", "  - --width:")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("compare", "he", "--depth", "abc"), ["--depth", "See 'initbench compare --help'."]),
        (("gain",), ["Missing argument", "See 'initbench gain --help'."]),
        (("run", "--no-such-flag"), ["--no-such-flag"]),
        (("phase", "--width", "0"), ["--width"]),
        (("list", "schemes", "extra"), ["extra"]),
    ],
)
def test_the_option_parsers_errors_look_like_initbenchs(cli, args: tuple[str, ...], names: list[str]) -> None:
    """Typer's usage errors and initbench's own errors: one layout, one exit code."""
    assert_user_error(cli(*args), *names)


@pytest.mark.parametrize(
    "args",
    [
        ("run", "{empty}"),
        ("compare", "he", "--config", "{empty}"),
        ("sweep", "{empty}", "model.depth=1,2"),
    ],
)
def test_an_empty_config_file_is_an_error(cli, tmp_path: Path, args: tuple[str, ...]) -> None:
    empty = write_config(tmp_path / "empty.yaml", "# nothing yet\n")
    result = cli(*(arg.replace("{empty}", str(empty)) for arg in args), "--out", tmp_path / "out")
    assert_user_error(result, "empty.yaml", "is empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("run", "missing.yaml"),
        ("run", "--resume", "missing-run"),
        ("report", "missing-sweep"),
        ("sweep", "missing.yaml", "model.depth=1,2"),
        ("compare", "he", "--experiment", "train", "--dataset", "missing.npz", "--steps", "1"),
    ],
)
def test_a_missing_path_says_it_does_not_exist(cli, tiny: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    assert_user_error(cli(*fill(args, tiny)), "missing", "does not exist")


# --- The same flags on every command -----------------------------------------------------------


def test_compare_takes_overrides_as_run_does(cli, tmp_path: Path) -> None:
    """``model.depth=3`` among the schemes means what ``--depth 3`` means; ``normal:std=0.5`` stays a scheme."""
    assert cli("compare", "he", "normal:std=0.5", "model.depth=3", "input.batch=4", "--width", "8", "--out", tmp_path / "a").exit_code == 0
    assert cli("compare", "he", "normal:std=0.5", "--depth", "3", "--batch", "4", "--width", "8", "--out", tmp_path / "b").exit_code == 0
    assert (tmp_path / "a" / "config.yaml").read_text() == (tmp_path / "b" / "config.yaml").read_text()
    assert (tmp_path / "a" / "layer_stats.csv").read_bytes() == (tmp_path / "b" / "layer_stats.csv").read_bytes()
    assert {row["scheme"] for row in read_csv(tmp_path / "a" / "layer_stats.csv")} == {"he", "normal:std=0.5"}


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", [*RUNNING_COMMANDS, "report", "list"])
def test_help_shows_flags_as_flags_in_80_columns(command: str) -> None:
    text = help_text(command)
    assert "<bool>" not in text and "BOOLEAN" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    if command in ("run", "compare", "probe"):
        assert "--eval" in text and "--no-eval" in text
    if command in RUNNING_COMMANDS:
        for flag in ("--out", "--quiet", "--device", "--threads", "INITBENCH_THREADS"):
            assert flag in text, (command, flag)
    if command in RUNNING_COMMANDS:
        assert "--seeds" in text


def test_gain_and_phase_take_the_same_sb2() -> None:
    """One quantity, σ_b², in both helps; phase also takes a single value, as gain does."""
    assert "Bias variance σ_b²" in help_text("gain") and "Bias variance σ_b²" in help_text("phase")


def test_phase_takes_one_sb2_value_and_matches_the_grid(cli, tmp_path: Path) -> None:
    """``--sb2 0.05`` is the 0.05 row of any grid through 0.05."""
    assert cli("phase", "--sw2", "1:2:3", "--sb2", "0.05", "--out", tmp_path / "one", "-q").exit_code == 0
    assert cli("phase", "--sw2", "1:2:3", "--sb2", "0:0.05:2", "--out", tmp_path / "grid", "-q").exit_code == 0
    one = read_csv(tmp_path / "one" / "phase.csv")
    grid = [row for row in read_csv(tmp_path / "grid" / "phase.csv") if float(row["sigma_b2"]) == 0.05]
    assert len(one) == 3 and one == grid


def test_a_one_row_phase_figure_is_not_blank() -> None:
    from initbench.experiments.phase import scheme_positions
    from initbench.nets.activations import ACTIVATIONS
    from initbench.render.figures import phase_figure
    from initbench.theory.phase_diagram import compute_phase_diagram

    tanh = ACTIVATIONS.get("tanh")()
    diagram = compute_phase_diagram(tanh, np.array([1.0, 1.5, 2.0]), np.array([0.05]))
    axes = phase_figure(diagram, scheme_positions(tanh), None).axes[0]
    mesh = axes.collections[0]
    assert mesh.get_array().size == 3 and np.isfinite(mesh.get_array()).all()
    low, high = axes.get_ylim()
    assert low < 0.05 < high and high - low > 0


def test_gain_writes_a_run_directory_with_out(cli, tmp_path: Path) -> None:
    result = cli("gain", "tanh", "--sb2", "0.05", "--out", tmp_path / "g", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Results: {tmp_path / 'g'}"
    printed = json.loads(cli("gain", "tanh", "--sb2", "0.05", "--json").stdout)
    assert json.loads((tmp_path / "g" / "summary.json").read_text()) == printed
    assert_user_error(cli("gain", "tanh", "--json", "--out", tmp_path / "h"), "--json", "--out")


def test_gain_seeds_give_the_median_of_the_nets_alone() -> None:
    from initbench.experiments.gain import measure_gains
    from initbench.nets.activations import ACTIVATIONS

    tanh, cpu = ACTIVATIONS.get("tanh")(), torch.device("cpu")
    gains = {"a": 1.0, "b": 1.6}
    together = measure_gains(tanh, gains, 0.05, cpu, depth=6, width=32, batch=16, seeds=(0, 1, 2))
    alone = [measure_gains(tanh, gains, 0.05, cpu, depth=6, width=32, batch=16, seeds=(seed,)) for seed in (0, 1, 2)]
    for name in gains:
        for position in (0, 1):
            assert together[name][position] == pytest.approx(float(np.median([run[name][position] for run in alone])), rel=1e-5)


def test_phase_seeds_go_with_measure(cli, tmp_path: Path) -> None:
    assert_user_error(cli("phase", "--seeds", "2"), "--seeds", "--measure")
    result = cli("phase", "--sw2", "1:2:2", "--sb2", "0", "--measure", "--depth", "5", "--width", "8", "--seeds", "3", "--out", tmp_path / "p", "-q")
    assert result.exit_code == 0, result.output
    assert "seeds: 3" in (tmp_path / "p" / "config.yaml").read_text()


def test_list_renders_docstring_markup() -> None:
    runner = CliRunner()
    for what in ("schemes", "activations", "datasets", "experiments"):
        text = runner.invoke(app, ["list", what]).stdout
        assert "``" not in text and ":class:" not in text, what
    assert "All weights equal to value." in runner.invoke(app, ["list", "schemes"]).stdout


# --- Threads ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("torch_threads")
@pytest.mark.parametrize("command", ["run", "compare", "probe", "sweep", "gain", "phase"])
def test_threads_from_the_flag_or_the_environment_reach_meta_json(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    args = {
        "run": ["run", str(tiny)],
        "compare": ["compare", "he", *SMALL],
        "probe": ["probe", "torch.nn:Linear", "model.kwargs.in_features=4", "model.kwargs.out_features=4", "--input-shape", "2,4", "--device", "cpu"],
        "sweep": ["sweep", str(tiny), "model.depth=1,2"],
        "gain": ["gain", "relu"],
        "phase": ["phase", "--sw2", "1:2:2", "--sb2", "0"],
    }[command]
    runner = CliRunner()
    for environment, flag, expected in (({"INITBENCH_THREADS": "1"}, [], 1), ({"INITBENCH_THREADS": "1"}, ["--threads", "2"], 2)):
        torch.set_num_threads(3)
        out = tmp_path / f"out-{expected}"
        result = runner.invoke(app, [*args, *flag, "--out", str(out), "-q"], env=environment)
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == expected
        metas = [out / "meta.json"] if command != "sweep" else sorted(out.glob("points/*/meta.json"))
        assert metas and all(json.loads(meta.read_text())["torch_threads"] == expected for meta in metas)
    assert_user_error(runner.invoke(app, [*args, "--threads", "0"]), "--threads")


@pytest.mark.usefixtures("torch_threads")
def test_results_do_not_depend_on_the_thread_count(cli, tmp_path: Path) -> None:
    """The default thread count follows the machine's load, so a rerun may get another: the
    numbers must not change with it (every reduction is per run, one thread's work)."""
    for threads in ("1", "2"):
        result = cli("compare", "he", "normal:std=0.1", "--depth", "4", "--width", "64", "--batch", "256", "--threads", threads, "--out", tmp_path / threads, "-q")
        assert result.exit_code == 0, result.output
    for table in ("layer_stats.csv", "histograms.csv"):
        assert (tmp_path / "1" / table).read_bytes() == (tmp_path / "2" / table).read_bytes()


@pytest.mark.parametrize(("cores", "load", "expected"), [(2, 0.0, 2), (2, 1.2, 1), (2, 9.5, 1), (16, 3.2, 13), (16, 0.4, 16)])
def test_the_default_is_the_idle_cores(cores: int, load: float, expected: int) -> None:
    from initbench.core.threads import default_threads

    assert default_threads(cores, load) == expected


# --- Progress -----------------------------------------------------------------------------------


class Recorder:
    """A Progress that remembers what it was told: [(description, total, steps advanced)]."""

    def __init__(self) -> None:
        self.tasks: list[list] = []

    def start(self, description: str, total: int) -> None:
        self.tasks.append([description, total, 0])

    def advance(self, steps: int = 1) -> None:
        self.tasks[-1][2] += steps

    def update(self, **fields: float) -> None:
        pass


def test_gain_and_phase_report_progress_to_the_end() -> None:
    from initbench.experiments.gain import measure_gains
    from initbench.experiments.phase import measure_convergence_depth
    from initbench.nets.activations import ACTIVATIONS
    from initbench.theory.phase_diagram import compute_phase_diagram

    tanh = ACTIVATIONS.get("tanh")()
    recorder = Recorder()
    measure_gains(tanh, {"a": 1.0, "b": 1.5}, 0.0, torch.device("cpu"), depth=7, width=8, batch=4, progress=recorder)
    diagram = compute_phase_diagram(tanh, np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.1]), recorder)
    measure_convergence_depth(diagram, tanh, 5, 8, torch.device("cpu"), recorder)
    assert recorder.tasks == [["measuring 2 gains", 7, 7], ["theory at 6 points", 6, 6], ["measuring 6 nets", 5, 5]]


def test_a_sweep_counts_its_points_stack_by_stack(tiny: Path, tmp_path: Path) -> None:
    from initbench.outputs.run_report import render_into
    from initbench.runs.sweeps import Sweep, open_sweep_directory, run_shard

    sweep = Sweep.from_config(tiny, ["model.depth=1,2", "model.width=4,8"])
    directory = open_sweep_directory(sweep, tmp_path / "sweep")
    points, lines = Recorder(), []
    outcome = run_shard(directory.path, render_into, log=lines.append, points=points)
    assert len(outcome.ran) == 4
    assert points.tasks == [["4 points", 4, 4]]
    stacks = [line for line in lines if line.startswith("[stack ")]
    assert len(stacks) == 4 and stacks[-1].startswith("[stack 4 of 4] Running")


def test_progress_bars_show_rate_and_time_left_and_leave_no_trace() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=80, color_system=None)
    with RichProgress(console) as progress:
        points = progress.bar()
        points.start("4 points", total=4)
        progress.start("training 8 runs", total=10)
        for _ in range(5):
            progress.advance()
        progress.update(loss=0.25, **{"test acc": 0.75})
        progress._progress.refresh()
        shown = stream.getvalue()
    console.print("next")
    assert "it/s" in shown and "ETA" in shown and "5/10" in shown and "0/4" in shown
    assert "loss 0.25, test acc 0.75" in shown
    assert shown.index("4 points") < shown.index("training 8 runs")  # the sweep's bar stays above
    lines = stream.getvalue().split("\n")
    assert lines[-2].endswith("next") and "ETA" not in lines[-2]  # the cleared bars leave "next" a line of its own
