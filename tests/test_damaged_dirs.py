"""``initbench report`` on a damaged or incomplete run directory: one clear message naming the
file and what is wrong, exit code 2, never a traceback; non-finite numbers initbench wrote still load.

Each damage is made to a copy of a directory a real run wrote (a forward run, a training run on
circles with its decision boundaries, and a training run interrupted after its first evaluations).
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from initbench.cli.app import app
from initbench.config.loading import validate_config
from initbench.core import signals
from initbench.core.interfaces import SilentProgress
from initbench.outputs.run_report import render_into
from initbench.runs.results import DamagedFileError, RunResult, parse_table
from initbench.runs.runner import CHECKPOINT, execute
from tests.test_one_renderer import TRAIN, InterruptAt

FORWARD = {
    "name": "small_forward", "device": "cpu", "seeds": 2, "model": {"depth": 4, "width": 8, "activation": "tanh"},
    "init": {"schemes": ["he", "xavier_normal"]}, "input": {"batch": 16},
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory of each kind, written once: forward, train, interrupted (a checkpoint, no tables)."""
    root = tmp_path_factory.mktemp("runs")
    execute(validate_config(FORWARD, "test"), root / "forward", SilentProgress(), render_into)
    execute(validate_config(TRAIN, "test"), root / "train", SilentProgress(), render_into)
    with pytest.raises(signals.Interrupted):
        execute(validate_config(TRAIN, "test"), root / "interrupted", InterruptAt(25), render_into)
    return root


def report(directory: Path) -> object:
    return CliRunner().invoke(app, ["report", str(directory), "-q"])


def damaged_copy(runs: Path, kind: str, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    copy = tmp_path / kind
    shutil.copytree(runs / kind, copy)
    damage(copy)
    return copy


def junk(name: str, data: bytes = b"\x80\x02junk\xff" * 8) -> Callable[[Path], None]:
    return lambda directory: (directory / name).write_bytes(data)


def cut_in_half(name: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        data = (directory / name).read_bytes()
        (directory / name).write_bytes(data[: len(data) // 2])

    return damage


def cut_mid_row(name: str) -> Callable[[Path], None]:
    """The file up to the middle of its third data row, as a write that stopped there leaves it."""

    def damage(directory: Path) -> None:
        lines = (directory / name).read_text().splitlines(keepends=True)
        (directory / name).write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])

    return damage


def without_array(name: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        with np.load(directory / "decision_boundary.npz") as archive:
            arrays = {key: value for key, value in archive.items() if key != name}
        np.savez(directory / "decision_boundary.npz", **arrays)

    return damage


def edit_csv(name: str, edit: Callable[[list[list[str]]], list[list[str]]]) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        rows = [line.split(",") for line in (directory / name).read_text().splitlines()]
        (directory / name).write_text("".join(",".join(row) + "\n" for row in edit(rows)))

    return damage


def with_cell(column: str, text: str) -> Callable[[list[list[str]]], list[list[str]]]:
    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[1][rows[0].index(column)] = text
        return rows

    return edit


def without_column(column: str) -> Callable[[list[list[str]]], list[list[str]]]:
    def edit(rows: list[list[str]]) -> list[list[str]]:
        index = rows[0].index(column)
        return [row[:index] + row[index + 1 :] for row in rows]

    return edit


def with_schemes(value: object) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        summary = json.loads((directory / "summary.json").read_text())
        (directory / "summary.json").write_text(json.dumps(summary | {"schemes": value}))

    return damage


def with_entry(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """summary.json with the entry of its first scheme edited."""

    def damage(directory: Path) -> None:
        summary = json.loads((directory / "summary.json").read_text())
        edit(next(iter(summary["schemes"].values())))
        (directory / "summary.json").write_text(json.dumps(summary))

    return damage


def removed(name: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).unlink()


def saved_state(state: object) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        (directory / CHECKPOINT).write_bytes(buffer.getvalue())

    return damage


#: id → (directory, damage, the words the message must hold).
DAMAGES = {
    "checkpoint junk": ("interrupted", junk(CHECKPOINT), [CHECKPOINT, "torch.load cannot read it"]),
    "checkpoint truncated": ("interrupted", cut_in_half(CHECKPOINT), [CHECKPOINT, "torch.load cannot read it"]),
    "checkpoint of another kind": ("interrupted", saved_state({"weights": torch.zeros(2)}), [CHECKPOINT, "progress"]),
    "checkpoint not a dict": ("interrupted", saved_state([1, 2]), [CHECKPOINT, "not a state dict"]),
    "npz junk": ("train", junk("decision_boundary.npz"), ["decision_boundary.npz", "does not read as an .npz"]),
    "npz truncated": ("train", cut_in_half("decision_boundary.npz"), ["decision_boundary.npz"]),
    "npz key missing": ("train", without_array("grid_x"), ["decision_boundary.npz", "no array grid_x"]),
    "npz runs missing": ("train", without_array("predictions"), ["decision_boundary.npz", "no array predictions"]),
    "csv non-number cell": ("forward", edit_csv("layer_stats.csv", with_cell("std", "abc")), ["layer_stats.csv", "'abc' in column std"]),
    "csv column missing": ("forward", edit_csv("layer_stats.csv", without_column("std")), ["layer_stats.csv", "no column std"]),
    "csv truncated mid-row": ("forward", cut_mid_row("layer_stats.csv"), ["layer_stats.csv", "line 4", "cut off"]),
    "csv empty": ("forward", junk("layer_stats.csv", b""), ["layer_stats.csv", "empty"]),
    "csv header only": ("forward", edit_csv("layer_stats.csv", lambda rows: rows[:1]), ["layer_stats.csv has no rows"]),
    "csv undecodable": ("forward", junk("histograms.csv"), ["histograms.csv", "does not read as CSV"]),
    "train csv truncated mid-row": ("train", cut_mid_row("train_metrics.csv"), ["train_metrics.csv", "cut off"]),
    "summary.json removed (train)": ("train", removed("summary.json"), ["marked complete", "no summary.json"]),
    "summary.json removed (forward)": ("forward", removed("summary.json"), ["marked complete", "no summary.json"]),
    "training.json removed": ("train", removed("training.json"), ["marked complete", "no training.json"]),
    "train_metrics.csv removed": ("train", removed("train_metrics.csv"), ["no train_metrics.csv"]),
    "schemes {}": ("forward", with_schemes({}), ["summary.json", "schemes are {}"]),
    "schemes []": ("train", with_schemes([]), ["summary.json", "schemes are []"]),
    "scheme entry key missing": ("forward", with_entry(lambda entry: entry.pop("verdict")), ["summary.json", "has no verdict"]),
    "scheme entry layers short": ("forward", with_entry(lambda entry: entry["std_median_by_layer"].pop()), ["summary.json", "std_median_by_layer"]),
    "train entry metric missing": ("train", with_entry(lambda entry: entry["loss"].pop("median")), ["summary.json", "loss without median"]),
    "layer renumbered": ("forward", edit_csv("layer_stats.csv", with_cell("layer", "9")), ["layer_stats.csv", "not 1 to 9"]),
    "summary.json junk": ("forward", junk("summary.json", b"{\"schemes\": "), ["summary.json", "does not read as JSON"]),
    "training.json a list": ("train", junk("training.json", b"[]"), ["training.json", "not a mapping"]),
    "training.json key missing": ("train", junk("training.json", b"{\"dataset\": \"circles\"}"), ["training.json", "no task"]),
    "meta.json empty": ("forward", junk("meta.json", b""), ["meta.json", "empty"]),
    "meta.json {}": ("forward", junk("meta.json", b"{}"), ["meta.json", "no status"]),
    "config.yaml junk": ("forward", junk("config.yaml", b"[1, 2"), ["config.yaml", "does not read as YAML"]),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_directory_is_exit_2_naming_the_file(damage: str, runs: Path, tmp_path: Path) -> None:
    kind, make, words = DAMAGES[damage]
    result = report(damaged_copy(runs, kind, tmp_path, make))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Failed:" not in result.output
    message = " ".join(result.stderr.split())  # the terminal wraps long lines
    for word in words:
        assert word in message, (word, message)
    assert "initbench run" in message or "Restore it" in message  # and says what to do


def test_an_interrupted_run_without_a_checkpoint_says_which_files_it_has_not_written(runs: Path, tmp_path: Path) -> None:
    result = report(damaged_copy(runs, "interrupted", tmp_path, removed(CHECKPOINT)))
    assert result.exit_code == 0, result.output
    written = Path(result.stdout.strip().splitlines()[-1].removeprefix("Report: "))
    text = " ".join((written / "report.md").read_text().split())
    assert "Nothing to report yet: it has no train_metrics.csv; it has no summary.json; it has no training.json." in text


def test_non_finite_numbers_initbench_wrote_still_load_and_report(runs: Path, tmp_path: Path) -> None:
    def non_finite(directory: Path) -> None:
        edit_csv("layer_stats.csv", with_cell("std", "nan"))(directory)
        edit_csv("layer_stats.csv", lambda rows: with_cell("mean", "inf")(with_cell("chi1", "-inf")(rows)))(directory)

    copy = damaged_copy(runs, "forward", tmp_path, non_finite)
    first = RunResult.load(copy).layer_stats[0]
    assert np.isnan(first["std"]) and first["mean"] == float("inf") and first["chi1"] == float("-inf")
    assert report(copy).exit_code == 0


def test_a_table_in_memory_is_checked_as_its_file_would_be() -> None:
    rows = parse_table(io.StringIO("scheme,gain,sigma_w,std_first,std_last\nhe,relu,1.4,,nan\n"), Path("gains.csv"))
    assert rows[0]["std_first"] is None and np.isnan(rows[0]["std_last"])
    with pytest.raises(DamagedFileError, match="gains.csv is damaged or incomplete: line 2 has 'x'"):
        parse_table(io.StringIO("gain,sigma_w,std_first,std_last\nrelu,x,1,1\n"), Path("gains.csv"))
