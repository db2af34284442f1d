"""The house: the package's import graph has no cycle at any depth, and the layers hold.

grimp (import-linter's graph builder) counts every import: module-level, function-local and those
under ``TYPE_CHECKING``, so a cycle hidden inside a function is found too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("initbench")


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a directed graph, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [component for component in strongly_connected(edges) if len(component) > 1] == [{"a", "b", "c"}]


def test_no_import_cycle_at_any_depth(graph: grimp.ImportGraph) -> None:
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles = [sorted(component) for component in strongly_connected(edges) if len(component) > 1]
    assert cycles == []


def test_the_layers_contracts_hold() -> None:
    """pyproject.toml's import-linter contracts (the pipeline's layers, independent experiments,
    no UI library below render, acyclic siblings): what CI's ``lint-imports`` checks."""
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_the_top_holds_only_the_facade() -> None:
    """At most a handful of modules at the top: the facade, ``__main__``, the version and the API."""
    top = sorted(path.name for path in (REPO / "initbench").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "_version.py", "api.py"]


def test_registries_list_in_the_order_the_plugins_register() -> None:
    """The package ``__init__`` imports its plug-ins in registration order, which is the order
    ``initbench list`` shows: the classic schemes first, the propagation experiments first."""
    from initbench.experiments.base import EXPERIMENTS
    from initbench.schemes.base import SCHEMES

    assert [name for name, _ in EXPERIMENTS] == ["forward", "gradients", "train", "gain", "phase"]
    schemes = [name for name, _ in SCHEMES]
    assert schemes[:3] == ["zeros", "constant", "ones"]
    assert schemes.index("kaiming_normal") < schemes.index("orthogonal") < schemes.index("delta_orthogonal") < schemes.index("lsuv") < schemes.index("fixup") < schemes.index("checkpoint")


def unexplained_local_imports(source: str) -> list[int]:
    """Line numbers of function-local imports with no comment saying why: a comment on the line,
    or on the line above the contiguous run of imports it belongs to."""
    lines = source.splitlines()
    tree = ast.parse(source)
    local = sorted(
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    )
    def continues_imports(text: str) -> bool:  # an import, or a line of a parenthesised one
        stripped = text.strip()
        return stripped.startswith(("from ", "import ", ")")) or (stripped.endswith(",") and not stripped.startswith("#"))

    explained = []
    for number in local:
        above = number - 1
        while above >= 1 and continues_imports(lines[above - 1]):
            above -= 1
        if "#" in lines[number - 1] or (above >= 1 and lines[above - 1].lstrip().startswith("#")):
            explained.append(number)
    return [number for number in local if number not in explained]


def test_the_unexplained_local_import_finder_finds_one() -> None:
    source = "def f():\n    # deferred for start-up time: loads torch\n    import torch\n    import numpy\n\ndef g():\n    import json\n"
    assert unexplained_local_imports(source) == [7]


def test_every_function_local_import_says_why() -> None:
    """A function-local import is for start-up time only, and says so (issue: no import hides a cycle)."""
    package = Path(__file__).resolve().parents[1] / "initbench"
    unexplained = [f"{path.relative_to(package.parent)}:{line}" for path in sorted(package.rglob("*.py")) for line in unexplained_local_imports(path.read_text(encoding="utf-8"))]
    assert not unexplained, "function-local imports without a comment saying why:\n" + "\n".join(unexplained)
