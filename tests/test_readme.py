"""The README's reference stays true: every registered name and shipped config is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from initbench.data.base import DATASETS
from initbench.experiments.base import EXPERIMENTS
from initbench.nets.activations import ACTIVATIONS
from initbench.schemes.base import SCHEMES

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("registry", [SCHEMES, ACTIVATIONS, DATASETS, EXPERIMENTS], ids=lambda r: r.kind)
def test_every_registered_name_is_documented(registry) -> None:
    missing = [name for name in registry.names(include_aliases=True) if f"`{name}`" not in README]
    assert not missing, f"document these {registry.kind}s in README.md: {missing}"


def test_every_shipped_config_is_documented() -> None:
    configs = [path.relative_to(REPO).as_posix() for path in (REPO / "configs").glob("*.yaml")]
    assert configs
    assert not [config for config in configs if config not in README]


def test_the_two_setup_commands_are_there() -> None:
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu\npip install -e . && initbench compare zeros random xavier he" in README
    assert 'pip install -e ".[test,cluster]" && python -m pytest -q' in README
    assert "python -m pytest -q" in (REPO / ".ci" / "run").read_text()
