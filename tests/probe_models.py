"""Small factories that ``initbench probe`` imports by name in the tests (``tests.probe_models:small_mlp``)."""

from torch import nn


def small_mlp() -> nn.Module:
    """Linear(5 → 7), tanh, Linear(7 → 3), with torch's default init."""
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
