"""Small factories that ``initbench probe`` imports by name in the tests (``tests.probe_models:small_mlp``)."""

from torch import nn


def small_mlp() -> nn.Module:
    """Linear(5 → 7), tanh, Linear(7 → 3), with torch's default init."""
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def tanh_relu_mlp() -> nn.Module:
    """Linear(16 → 32), tanh, Linear(32 → 32), ReLU, Linear(32 → 8): mixed activations for the LSUV tests."""
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))


def small_cnn() -> nn.Module:
    """Conv(3 → 8, 3×3), ReLU, Conv(8 → 8, 3×3), tanh, flatten, Linear(8·4·4 → 5), on 3 × 8 × 8 images."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)
    )
