"""CUDA gives the same numbers as the CPU (same draws, float tolerance). Skipped without a GPU;
``bench/gpu_check.sh`` runs these on a machine that has one."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

REPO = Path(__file__).resolve().parent.parent


def numbers(path: Path, column: str) -> list[float]:
    with path.open() as stream:
        return [float(row[column]) for row in csv.DictReader(stream) if row[column] not in ("", "nan")]


@pytest.mark.parametrize(
    ("config", "table", "columns"),
    [
        ("tiny/forward.yaml", "layer_stats.csv", ("mean", "std", "pre_std", "frac_saturated")),
        ("tiny/compare.yaml", "layer_stats.csv", ("std", "pre_std")),
        ("tiny/train_circles.yaml", "train_metrics.csv", ("loss", "train_acc", "test_acc")),
    ],
)
def test_cuda_matches_cpu(cli, tmp_path: Path, config: str, table: str, columns: tuple[str, ...]) -> None:
    for device in ("cpu", "cuda"):
        result = cli("run", REPO / "configs" / config, "--device", device, "--out", tmp_path / device, "-q", "experiment=gradients" if config == "tiny/forward.yaml" else "seeds=2")
        assert result.exit_code == 0, result.output
    for column in columns:
        cpu, gpu = numbers(tmp_path / "cpu" / table, column), numbers(tmp_path / "cuda" / table, column)
        assert len(cpu) == len(gpu)
        assert gpu == pytest.approx(cpu, rel=2e-3, abs=1e-5), column


def test_auto_picks_cuda(cli, tmp_path: Path) -> None:
    result = cli("run", REPO / "configs" / "tiny" / "forward.yaml", "--device", "auto", "--out", tmp_path / "auto", "-q")
    assert result.exit_code == 0
    assert '"device": "cuda' in (tmp_path / "auto" / "meta.json").read_text()
