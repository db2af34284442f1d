"""Gains for any activation, from theory: what ``gain: preserving`` and ``gain: critical`` mean.

PyTorch's ``calculate_gain`` knows a handful of activations (``kaiming_normal_(w,
nonlinearity="gelu")`` raises). Mean-field theory gives a gain for every φ:

- the **variance-preserving** gain σ_w with σ_w²·E[φ(z)²] + σ_b² = 1, z ~ N(0, 1): unit-variance
  pre-activations stay unit-variance;
- the **critical** gain, where χ₁ = σ_w²·E[φ'(z)²] = 1 at the fixed point q* it leads to: the
  edge of chaos, where gradients neither vanish nor explode with depth.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from initbench import theory
from initbench.activations import Activation
from initbench.engine import Run, StackedForward
from initbench.experiments import Progress, SilentProgress
from initbench.schemes import KaimingNormal, Normal


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


def measure_gains(
    activation: Activation,
    gains: dict[str, float],
    sb2: float,
    device: torch.device,
    depth: int = 100,
    width: int = 256,
    batch: int = 256,
    progress: Progress | None = None,
    seeds: Sequence[int] = (0,),
) -> dict[str, tuple[float, float]]:
    """The measured std of φ(h) at layer 1 and layer ``depth`` of a net with weights N(0, gain²/width),
    the median over ``seeds`` (one net each).

    All gains and seeds run stacked through one engine pass, biases N(0, σ_b²) when ``sb2`` > 0;
    ``progress`` counts the layers.
    """
    bias = Normal(std=math.sqrt(sb2)) if sb2 > 0 else None
    runs = [
        Run(label=name, seed=seed, scheme=KaimingNormal(gain=gain).resolve(activation), bias=bias) for name, gain in gains.items() for seed in seeds
    ]
    engine = StackedForward(runs, activation, device, torch.float32)
    first: torch.Tensor | None = None
    progress = progress or SilentProgress()
    progress.start(f"measuring {len(runs)} gains", total=depth)
    with torch.no_grad():
        for output in engine.layers(engine.inputs(batch, width), [width] * depth, use_bias=bias is not None):
            std = output.post.flatten(1).to(torch.float64).std(dim=1, correction=0)
            if output.layer == 1:
                first = std
            progress.advance()
    assert first is not None
    first_by_gain, last_by_gain = first.reshape(len(gains), len(seeds)).tolist(), std.reshape(len(gains), len(seeds)).tolist()
    return {name: (statistics.median(first_by_gain[index]), statistics.median(last_by_gain[index])) for index, name in enumerate(gains)}
