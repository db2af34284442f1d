"""CI smoke runs: every config in configs/tiny/ through the installed ``initbench`` command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIGS = sorted((REPO / "configs" / "tiny").glob("*.yaml"))


def test_there_are_tiny_configs() -> None:
    assert TINY_CONFIGS


@pytest.mark.parametrize("config", TINY_CONFIGS, ids=lambda path: path.name)
def test_tiny_config_runs_through_the_installed_command(config: Path, tmp_path: Path) -> None:
    executable = shutil.which("initbench")
    assert executable, "the initbench console script is not installed (pip install -e .)"
    out = tmp_path / "run"
    result = subprocess.run([executable, "run", str(config), "--out", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert f"Results: {out}" in result.stdout
    assert json.loads((out / "meta.json").read_text())["status"] == "complete"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schemes"], "the run produced no scheme summaries"


def test_python_dash_m_works(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "initbench", "--version"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("initbench ")
