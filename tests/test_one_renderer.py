"""One renderer: the figures and summary.md a run writes right after it saved its data are the
bytes ``initbench report`` writes for that directory, since both come from the same reporter fed
with the same files (:mod:`initbench.outputs.run_report`); and ``report`` on an interrupted
training run shows the evaluations its checkpoint saved."""

from __future__ import annotations

import io
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from initbench.cli.app import app
from initbench.config.loading import validate_config
from initbench.core import signals
from initbench.core.interfaces import SilentProgress
from initbench.outputs.run_report import render_into
from initbench.runs.runner import CHECKPOINT, checkpointed, execute
from tests.conftest import REPO, read_csv

TINY = sorted((REPO / "configs" / "tiny").glob("*.yaml"))
#: Shipped configs that reach the parts the tiny ones do not: LSUV's paragraphs, the module
#: backend's row table and init.rules (a cnn, at the image centre), decision boundaries on circles.
REAL = [REPO / "configs" / name for name in ("lsuv_tanh_forward.yaml", "rules_cnn_forward.yaml", "circles_dlai.yaml")]
#: Commands that write the other kinds of directory.
COMMANDS = {
    "gradients": ("compare", "he", "xavier", "random", "--experiment", "gradients", "--activation", "linear", "--depth", "30", "--width", "16", "--seeds", "2"),
    "module": ("probe", "tests.probe_models:small_mlp", "--input-shape", "16,5", "--seeds", "2"),
    "gain": ("gain", "tanh", "--seeds", "2"),
    "phase": ("phase", "--activation", "tanh", "--sw2", "0.5:3:4", "--sb2", "0:0.2:2", "--measure", "--depth", "10", "--width", "16"),
    "recommend": ("recommend", "--arch", "mlp", "--depth", "3", "--width", "8", "--steps", "5", "--seeds", "1"),
}


def invoke(*args: Any) -> Any:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def rendered(directory: Path) -> dict[str, bytes]:
    """What the reporter wrote into a directory: its figures and summary.md."""
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.suffix == ".png" or path.name == "summary.md"}


def report_of(directory: Path) -> Path:
    return Path(invoke("report", directory, "-q").stdout.strip().splitlines()[-1].removeprefix("Report: "))


def assert_report_matches_run(run: Path) -> None:
    after_run = rendered(run)
    assert after_run, f"{run} has no figure and no summary.md"
    in_report = rendered(report_of(run))
    assert sorted(in_report) == sorted(after_run)
    for name, data in after_run.items():
        assert in_report[name] == data, name


@pytest.mark.parametrize("config", TINY + REAL, ids=lambda path: path.relative_to(REPO / "configs").as_posix())
def test_a_shipped_configs_figures_and_summary_are_the_bytes_its_report_writes(config: Path, tmp_path: Path) -> None:
    if config in REAL and config.stem != "circles_dlai":
        override = ["seeds=2"]  # the same parts, at a fraction of the time
    else:
        override = []
    invoke("run", config, *override, "--out", tmp_path / "run", "-q")
    assert_report_matches_run(tmp_path / "run")


@pytest.mark.parametrize("kind", COMMANDS)
def test_every_kind_of_directory_reports_the_bytes_its_run_wrote(kind: str, tmp_path: Path) -> None:
    invoke(*COMMANDS[kind], "--out", tmp_path / kind, "-q")
    assert_report_matches_run(tmp_path / kind)


class InterruptAt(SilentProgress):
    """Progress that delivers SIGTERM's interrupt once ``at`` steps have been done."""

    def __init__(self, at: int) -> None:
        self.at, self.done = at, 0

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if self.done >= self.at:
            raise signals.Interrupted(signal.SIGTERM)


TRAIN = {
    "name": "tiny_train", "experiment": "train", "device": "cpu", "seeds": 2,
    "model": {"hidden": [6, 4], "activation": "relu", "bias": True}, "init": {"schemes": ["zeros", "normal:std=10", "he"]},
    "train": {"dataset": "circles:n_train=64,n_test=32", "steps": 40, "lr": 0.05, "optimizer": "adam", "batch_size": 16, "eval_every": 10},
}  # fmt: skip


def test_report_on_an_interrupted_training_run_shows_the_evaluations_its_checkpoint_saved(tmp_path: Path) -> None:
    """Interrupted after its evaluations at steps 0, 10 and 20, the run wrote no table; its
    report rebuilds them from checkpoint.pt, and they are the uninterrupted run's rows up to step 20."""
    config = validate_config(TRAIN, "test")
    reference, _ = execute(config, tmp_path / "reference", SilentProgress(), render_into)
    out = tmp_path / "interrupted"
    with pytest.raises(signals.Interrupted):
        execute(config, out, InterruptAt(25), render_into)
    assert not (out / "train_metrics.csv").exists() and (out / CHECKPOINT).is_file()
    saved = torch.load(io.BytesIO((out / CHECKPOINT).read_bytes()), weights_only=True)
    steps = [evaluation["step"] for evaluation in saved["evaluations"]]
    assert steps == [0, 10, 20]

    rebuilt = checkpointed(out)
    assert rebuilt is not None
    expected = [row for row in read_csv(reference.path / "train_metrics.csv") if int(row["step"]) <= steps[-1]]
    got = rebuilt.tables["train_metrics.csv"]
    assert [(row["scheme"], row["seed"], row["step"], row["loss"]) for row in got] == [
        (row["scheme"], int(row["seed"]), int(row["step"]), float(row["loss"])) for row in expected
    ]

    report = report_of(out)
    summary_md = (report / "summary.md").read_text()
    assert "final metrics at step 20" in summary_md
    assert f"rebuilt from the evaluations its {CHECKPOINT} saved, the last at step 20" in (report / "report.md").read_text()
    final = {row["scheme"]: row for row in read_csv(report / "summary.csv")}
    he_losses = sorted(float(row["loss"]) for row in expected if row["scheme"] == "he" and int(row["step"]) == 20)
    assert float(final["he"]["loss"]) == pytest.approx(sum(he_losses) / 2, rel=1e-12)  # the median of two seeds
    assert (report / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "summary.md").exists()  # the report writes into its own folder, never the run's
