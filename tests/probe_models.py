"""Small factories that ``initbench probe`` imports by name in the tests (``tests.probe_models:small_mlp``)."""

from torch import nn


def small_mlp() -> nn.Module:
    """Linear(5 → 7), tanh, Linear(7 → 3), with torch's default init."""
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


class MarkedBranch(nn.Sequential):
    """A residual branch, marked as initbench finds them."""

    residual_branch = True


class ResidualBlock(nn.Module):
    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        for index in range(layers):
            modules += [nn.ReLU()] if index else []
            modules.append(nn.Linear(width, width))
        self.branch = MarkedBranch(*modules)

    def forward(self, x):
        return x + self.branch(x)


def residual_mlp(width: int = 8, blocks: int = 3, branch_layers: int = 3, outputs: int = 2) -> nn.Module:
    """``blocks`` residual blocks x + F(x), F of ``branch_layers`` Linear layers with ReLU between (m = branch_layers),
    then a Linear(width → outputs) head outside every branch."""
    return nn.Sequential(*(ResidualBlock(width, branch_layers) for _ in range(blocks)), nn.Linear(width, outputs))
