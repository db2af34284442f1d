"""Shared fixtures: a CLI runner with a wide terminal, so rich never wraps a message we assert on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from initbench.cli.app import app

REPO = Path(__file__).resolve().parent.parent


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
