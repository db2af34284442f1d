"""Shared fixtures: a CLI runner with a wide terminal, so rich never wraps a message we assert on;
and one hypothesis profile for every property test."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import settings
from typer.testing import CliRunner

from initbench.cli.app import app

REPO = Path(__file__).resolve().parent.parent

# Every property test draws the same examples on every run, alone or in any order: derandomized,
# with no example database to replay last run's failures, and no deadline (a busy CI machine would
# fail a test on its clock). A case that fails, fails every time, so CI cannot flake on one.
settings.register_profile("initbench", derandomize=True, database=None, deadline=None)
settings.load_profile("initbench")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Invoke ``initbench`` in-process from a scratch working directory; returns the click Result."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(arg) for arg in args])

    return invoke


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
