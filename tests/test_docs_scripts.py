"""The scripts under docs/ that regenerate the README's figures import only names that exist.

They are run by hand (each takes seconds to minutes), so nothing else would notice a move that
breaks them: this parses each script and resolves every ``from initbench... import name``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCRIPTS = sorted(DOCS.rglob("*.py"))


def initbench_imports(script: Path) -> list[tuple[str, str]]:
    """(module, name) for each ``from initbench.X import name`` in the script, at any depth."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "initbench"
        for alias in node.names
    ]


def test_there_are_docs_scripts() -> None:
    assert SCRIPTS, "docs/ has no scripts: update this test if they moved"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(DOCS)))
def test_docs_script_imports_resolve(script: Path) -> None:
    imports = initbench_imports(script)
    assert imports, f"{script.name} imports nothing from initbench"
    for module, name in imports:
        assert hasattr(importlib.import_module(module), name), f"{script.name}: {module} has no {name}"
