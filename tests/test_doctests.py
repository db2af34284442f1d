"""Every docstring example in the package runs, and shows what it says it shows.

The examples are found by walking ``initbench`` itself, so a module that gains one is tested the day
it is written, and a module without any is simply not listed.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import initbench


def modules() -> list[ModuleType]:
    """Every module of the package, but ``__main__``, which runs the CLI when imported."""
    names = [info.name for info in pkgutil.walk_packages(initbench.__path__, "initbench.") if not info.name.endswith(".__main__")]
    return [initbench, *(importlib.import_module(name) for name in names)]


EXAMPLES = [test for module in modules() for test in doctest.DocTestFinder().find(module) if test.examples]


def test_every_file_that_shows_an_example_has_its_examples_run() -> None:
    # Counted independently of the walk and the finder: the source files that hold a prompt.
    written = {path for path in Path(initbench.__file__).parent.rglob("*.py") if ">>> " in path.read_text()}
    assert written == {Path(test.filename) for test in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda test: test.name)
def test_docstring_example(example: doctest.DocTest) -> None:
    report: list[str] = []
    runner = doctest.DocTestRunner()
    runner.run(example, out=report.append)
    assert runner.failures == 0, "".join(report)
