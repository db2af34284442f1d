"""Gains for any activation, from theory: what ``gain: preserving`` and ``gain: critical`` mean.

PyTorch's ``calculate_gain`` knows a handful of activations (``kaiming_normal_(w,
nonlinearity="gelu")`` raises). Mean-field theory gives a gain for every φ:

- the **variance-preserving** gain σ_w with σ_w²·E[φ(z)²] + σ_b² = 1, z ~ N(0, 1): unit-variance
  pre-activations stay unit-variance;
- the **critical** gain, where χ₁ = σ_w²·E[φ'(z)²] = 1 at the fixed point q* it leads to: the
  edge of chaos, where gradients neither vanish nor explode with depth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from initbench import theory
from initbench.nets.activations import Activation


@dataclass(frozen=True)
class Gains:
    """The three gains of one activation (None where it does not exist)."""

    activation: str
    variance_preserving_gain: float | None
    critical_gain: float | None
    torch_gain: float | None

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    def named(self) -> dict[str, float]:
        """The gains that exist, by short name."""
        values = {"preserving": self.variance_preserving_gain, "critical": self.critical_gain, "torch": self.torch_gain}
        return {name: value for name, value in values.items() if value is not None}


def compute_gains(activation: Activation, sb2: float = 0.0) -> Gains:
    return Gains(
        activation=activation.spec(),
        variance_preserving_gain=theory.variance_preserving_gain(activation, sb2),
        critical_gain=theory.critical_gain(activation, sb2),
        torch_gain=activation.torch_gain(),
    )
