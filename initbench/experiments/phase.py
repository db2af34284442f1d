"""The order–chaos phase diagram as an experiment (``experiment: phase``, or ``initbench phase``).

Theory from :mod:`initbench.experiments.phase` over the ``phase.sw2`` × ``phase.sb2`` grid for
``model.activation``, and with ``phase.measure`` the measured convergence depth in nets of
``model.depth`` × ``model.width``, their correlations averaged over ``seeds`` nets a point. Writes ``phase.csv``; the reporter
draws ``phase.png`` from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from initbench.config.grids import MAX_GRID_POINTS, parse_grid
from initbench.core.interfaces import Table
from initbench.experiments.base import EXPERIMENTS, ExperimentResult, RunContext
from initbench.theory.phase_diagram import CONVERGED, PAIRS, START_CORRELATION, PhaseDiagram, compute_phase_diagram

if TYPE_CHECKING:
    import torch

    from initbench.config.run import Config
    from initbench.config.sections import PhaseConfig
import math
from collections.abc import Sequence

import numpy as np
import torch

from initbench.core.errors import InitbenchError
from initbench.core.interfaces import Progress, SilentProgress
from initbench.core.runtime import MemoryEstimate, check_memory, derive_seed
from initbench.engines.base import Run
from initbench.engines.stacked import StackedForward, propagation_memory_estimate
from initbench.nets.activations import Activation
from initbench.nets.architectures import MAX_DEPTH
from initbench.schemes.base import resolve_gain
from initbench.schemes.classic import Normal

COLUMNS = ("sigma_w2", "sigma_b2", "q_star", "chi1", "phase", "xi_c", "c_star", "predicted_depth", "measured_depth")


@EXPERIMENTS.register("phase")
class PhaseExperiment:
    """The order–chaos phase diagram over (σ_w², σ_b²): χ₁, depth scales and where the common schemes sit."""

    def settings(self, config: Config) -> PhaseConfig:
        assert config.phase is not None  # Config fills it in for experiment: phase
        return config.phase

    def check(self, config: Config, device: torch.device) -> None:
        """The grid's size, and with ``measure`` its nets' memory (the grids' syntax was checked with the config)."""
        settings = self.settings(config)
        sw2_values, sb2_values = parse_grid(settings.sw2, "phase.sw2"), parse_grid(settings.sb2, "phase.sb2")
        check_grid(sw2_values, sb2_values, config.model.depth if settings.measure else None, config.model.width, device, config.seeds)

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        settings = self.settings(config)
        function = config.model.build_activation()
        sw2_values, sb2_values = parse_grid(settings.sw2, "phase.sw2"), parse_grid(settings.sb2, "phase.sb2")
        depth, width = config.model.depth, config.model.width
        diagram = compute_phase_diagram(function, sw2_values, sb2_values, context.progress)
        if settings.measure:
            diagram.measured_depth = measure_convergence_depth(diagram, function, depth, width, context.device, context.progress, config.seed_list())
        rows = [
            (float(diagram.sw2[column]), float(diagram.sb2[row]), float(diagram.q_star[row, column]), float(diagram.chi1[row, column]),
             diagram.phase[row, column], float(diagram.xi_c[row, column]), float(diagram.c_star[row, column]), float(diagram.predicted_depth[row, column]),
             float(diagram.measured_depth[row, column]) if diagram.measured_depth is not None else "")
            for row in range(len(diagram.sb2)) for column in range(len(diagram.sw2))
        ]  # fmt: skip
        return ExperimentResult(tables={"phase.csv": Table(COLUMNS, rows)}, summary=None)


def check_grid(sw2: np.ndarray, sb2: np.ndarray, measure_depth: int | None, width: int, device: torch.device, seeds: int = 1) -> None:
    """Refuse, before computing anything, a grid of more than ``MAX_GRID_POINTS`` points, or one
    whose measured nets (``measure_depth`` layers of ``width``, ``seeds`` runs a point) would not fit in memory."""
    points = len(sw2) * len(sb2)
    if points > MAX_GRID_POINTS:
        raise InitbenchError(f"--sw2 and --sb2 make a grid of {len(sw2)} × {len(sb2)} = {points} points; the most is {MAX_GRID_POINTS}.", hint="Use fewer values.")
    if measure_depth is not None:
        if measure_depth > MAX_DEPTH:
            raise InitbenchError(f"--depth {measure_depth} is more than the {MAX_DEPTH} layers a net may have.")
        nets = propagation_memory_estimate(points * seeds, 2 * PAIRS, width, measure_depth, False, torch.float32)
        check_memory(MemoryEstimate(nets.device, 0), device, hint="Use fewer grid points or seeds, a smaller --width, or leave out --measure.")


def measure_convergence_depth(
    diagram: PhaseDiagram,
    activation: Activation,
    depth: int,
    width: int,
    device: torch.device,
    progress: Progress | None = None,
    seeds: Sequence[int] = (0,),
) -> np.ndarray:
    """Measured depth after which two inputs' pre-activation correlation stays within CONVERGED of c*.

    Every grid point is one run per seed (weights N(0, σ_w²/width), biases N(0, σ_b²)), all
    stacked. At finite width a single pair's correlation random-walks by about 1/√width per
    layer, so we average ``PAIRS`` pairs of inputs (each of correlation START_CORRELATION) in
    each of the point's nets, one per seed, and count a layer as converged only if every later
    layer is too. cˡ = ⟨h_a, h_b⟩ / (|h_a|·|h_b|). The result is
    the last layer that was off by more than CONVERGED (0 if none), NaN if the last layer was.
    ``progress`` counts the layers.
    """
    points = [(row, column) for row in range(len(diagram.sb2)) for column in range(len(diagram.sw2))]
    runs = [
        Run(
            label=f"{diagram.sw2[column]:g},{diagram.sb2[row]:g}",
            seed=seed,
            scheme=Normal(std=math.sqrt(diagram.sw2[column] / width)),
            bias=Normal(std=math.sqrt(diagram.sb2[row])),
        )
        for row, column in points
        for seed in seeds
    ]
    generator = torch.Generator().manual_seed(derive_seed(0, "phase-inputs"))
    first, second = torch.randn(2, PAIRS, width, generator=generator, dtype=torch.float64).to(device)
    partner = START_CORRELATION * first + math.sqrt(1 - START_CORRELATION**2) * second
    pairs = torch.stack([first, partner], dim=1).reshape(2 * PAIRS, width)  # rows a₀, b₀, a₁, b₁, ...
    x = pairs.to(torch.float32).expand(len(runs), 2 * PAIRS, width).contiguous()
    target = torch.tensor([diagram.c_star[row, column] for row, column in points], dtype=torch.float64, device=device)
    last_off = torch.zeros(len(points), dtype=torch.float64, device=device)
    engine = StackedForward(runs, activation, device, torch.float32)
    progress = progress or SilentProgress()
    progress.start(f"measuring {len(runs)} nets", total=depth)
    with torch.no_grad():
        for output in engine.layers(x, [width] * depth, use_bias=True):
            h = output.pre.to(torch.float64)
            a, b = h[:, 0::2], h[:, 1::2]
            per_net = ((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).mean(-1)
            correlation = per_net.reshape(len(points), len(seeds)).mean(-1)
            off = ~((correlation - target).abs() <= CONVERGED)  # NaN targets count as off
            last_off[off] = float(output.layer)
            progress.advance()
    measured = torch.where(last_off == depth, math.nan, last_off).cpu().numpy()
    result = np.full(diagram.chi1.shape, math.nan)
    for index, (row, column) in enumerate(points):
        result[row, column] = measured[index]
    return result


def scheme_positions(activation: Activation) -> dict[str, float]:
    """Where the common schemes put σ_w² (square layers, σ_b² = 0), labelled for the plot.

    On square layers Xavier and He with ``gain: auto`` both give σ_w² = gain², and LeCun gives 1,
    as Xavier with gain 1 does; points that coincide share one label.
    """
    gain = resolve_gain("auto", activation)
    positions: dict[float, list[str]] = {}
    positions.setdefault(round(gain**2, 12), []).append(f"Xavier = He (gain auto = {gain:.3g})")
    positions.setdefault(1.0, []).append("LeCun = Xavier (gain 1)")
    return {" = ".join(labels) if len(labels) > 1 else labels[0]: sw2 for sw2, labels in positions.items()}
