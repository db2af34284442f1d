"""Gains of an activation as an experiment (``experiment: gain``, or ``initbench gain``).

The variance-preserving, critical and PyTorch gains of ``model.activation`` from
:mod:`initbench.experiments.gain`, each checked in a ``model.depth`` × ``model.width`` net fed ``input.batch``
rows (the median over ``seeds``). Writes ``gains.csv`` (``gain,sigma_w,std_first,std_last``) and ``summary.json`` (the keys of
``initbench gain --json``); the reporter writes ``summary.md`` from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from initbench.core.interfaces import Table
from initbench.experiments.base import EXPERIMENTS, ExperimentResult, RunContext
from initbench.theory.gains import Gains, compute_gains

if TYPE_CHECKING:
    import torch

    from initbench.config.run import Config
import math
import statistics
from collections.abc import Sequence

import torch

from initbench.core.interfaces import Progress, SilentProgress
from initbench.core.runtime import MemoryEstimate, check_memory
from initbench.engines.base import Run
from initbench.engines.stacked import StackedForward, propagation_memory_estimate
from initbench.nets.activations import Activation
from initbench.schemes.classic import Normal
from initbench.schemes.scaling import KaimingNormal

LABELS = {"preserving": "variance-preserving", "critical": "critical (χ₁ = 1)", "torch": "PyTorch calculate_gain"}


def sb2_of(config: Config) -> float:
    assert config.gain is not None  # Config fills it in for experiment: gain
    return config.gain.sb2


def seed_range_text(seeds: list[int]) -> str:
    """``seed 0``, or ``median over seeds 0–2``."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"median over seeds {seeds[0]}–{seeds[-1]}"


def gains_of(config: Config) -> Gains:
    """The three gains of the config's activation, from theory alone (``initbench gain --json``)."""
    return compute_gains(config.model.build_activation(), sb2_of(config))


@EXPERIMENTS.register("gain")
class GainExperiment:
    """The variance-preserving, critical and PyTorch gains of an activation, with a measured check."""

    def check(self, config: Config, device: torch.device) -> None:
        """The measured nets' memory: three gains × ``seeds`` nets, stacked."""

        nets = propagation_memory_estimate(3 * config.seeds, config.input.batch, config.model.width, config.model.depth, False, torch.float32)
        check_memory(MemoryEstimate(nets.device, 0), device, hint="Use fewer --seeds.")

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        sb2 = sb2_of(config)
        gains = gains_of(config)
        depth, width, batch = config.model.depth, config.model.width, config.input.batch
        measured = measure_gains(config.model.build_activation(), gains.named(), sb2, context.device, depth, width, batch, context.progress, config.seed_list())
        csv_rows = [(name, gains.named()[name], *measured[name]) for name in gains.named()]
        return ExperimentResult(tables={"gains.csv": Table(("gain", "sigma_w", "std_first", "std_last"), csv_rows)}, summary=gains.as_json())


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
