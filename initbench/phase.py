"""The order–chaos phase diagram over (σ_w², σ_b²), from theory and, optionally, from real nets.

For each grid point mean-field theory gives χ₁ at the fixed point q* (χ₁ = 1 is the edge of
chaos) and the correlation depth scale ξ_c (how many layers two inputs' correlation takes to
reach its fixed point c*). With measurement, every grid point also becomes a real network (all
stacked in one engine pass) fed pairs of inputs of correlation ``START_CORRELATION``; the depth
after which their mean correlation stays within ``CONVERGED`` of c* is set beside the linearized prediction
ξ_c·ln(|c⁰ − c*| / CONVERGED).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from initbench import theory
from initbench.activations import Activation
from initbench.engine import MAX_DEPTH, MemoryEstimate, Run, StackedForward, check_memory, derive_seed, propagation_memory_estimate
from initbench.errors import InitbenchError
from initbench.experiments import Progress, SilentProgress
from initbench.schemes import Normal, resolve_gain

START_CORRELATION = 0.2
CONVERGED = 0.05
PAIRS = 16


#: The most grid points a diagram computes: the theory takes up to ~0.1 s a point (tanh, one
#: busy core), so this is a quarter of an hour, and a typo like N = 1000000 is refused at once.
MAX_GRID_POINTS = 10_000


def parse_grid(text: str, option: str) -> np.ndarray:
    """``START:STOP:N`` → N evenly spaced values from START to STOP inclusive (N ≥ 2, finite values
    ≥ 0); a single value ``V`` → that value alone (a diagram along the other axis)."""
    parts = text.split(":")
    if len(parts) == 1:
        try:
            value = float(text)
        except ValueError:
            raise InitbenchError(f"{option} '{text}' is neither a number nor START:STOP:N.", hint=f"For example {option} 0.05 or {option} 0.5:4:36.") from None
        if not (math.isfinite(value) and value >= 0):
            raise InitbenchError(f"{option} '{text}' must be a finite number ≥ 0.")
        return np.array([value])
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise InitbenchError(f"{option} '{text}' is not START:STOP:N.", hint=f"For example {option} 0.5:4:36.") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or count < 2 or start < 0 or stop <= start:
        raise InitbenchError(f"{option} '{text}' needs finite 0 ≤ START < STOP and N ≥ 2.")
    if count > MAX_GRID_POINTS:
        raise InitbenchError(f"{option} '{text}' asks for {count} values; a diagram has at most {MAX_GRID_POINTS} points.")
    return np.linspace(start, stop, count)


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


@dataclass
class PhaseDiagram:
    """Theory (and measurements) on a grid; 2-D arrays are ``[len(sb2), len(sw2)]``."""

    activation: str
    sw2: np.ndarray
    sb2: np.ndarray
    q_star: np.ndarray
    chi1: np.ndarray
    xi_c: np.ndarray
    c_star: np.ndarray
    phase: np.ndarray  # strings: ordered, critical, chaotic, or unbounded where q* = inf
    predicted_depth: np.ndarray  # ξ_c·ln(|c⁰ − c*| / CONVERGED)
    measured_depth: np.ndarray | None = None  # NaN where not converged within the measured depth


def predicted_convergence_depth(xi_c: float, c_star: float) -> float:
    """Layers for |cˡ − c*| to shrink from |c⁰ − c*| to CONVERGED, if it shrinks like e^(−l/ξ_c)."""
    distance = abs(START_CORRELATION - c_star)
    if not (math.isfinite(c_star) and math.isfinite(xi_c)) or distance <= CONVERGED:
        return 0.0 if distance <= CONVERGED else math.inf if math.isfinite(c_star) else math.nan
    return xi_c * math.log(distance / CONVERGED)


def compute_phase_diagram(activation: Activation, sw2_values: np.ndarray, sb2_values: np.ndarray, progress: Progress | None = None) -> PhaseDiagram:
    """χ₁ at q*, its phase, ξ_c and c* at every (σ_w², σ_b²), with q* reached from the measured
    nets' q¹ = σ_w² + σ_b² (N(0, 1) inputs). Where q* is unbounded the phase is "unbounded" and χ₁
    is its limit as q → ∞, NaN where that has no value. ``progress`` counts the grid points."""
    shape = (len(sb2_values), len(sw2_values))
    q_star, chi, xi_c, c_star, predicted = (np.full(shape, math.nan) for _ in range(5))
    phases = np.full(shape, "", dtype=object)
    progress = progress or SilentProgress()
    progress.start(f"theory at {shape[0] * shape[1]} points", total=shape[0] * shape[1])
    for row, sb2 in enumerate(sb2_values):
        for column, sw2 in enumerate(sw2_values):
            q = theory.fixed_point(activation, float(sw2), float(sb2))
            q_star[row, column] = q
            chi[row, column] = theory.chi1(activation, float(sw2), q)
            phases[row, column] = theory.fixed_point_phase(q, chi[row, column])
            if math.isfinite(q):
                scales = theory.depth_scales(activation, float(sw2), float(sb2))
                xi_c[row, column], c_star[row, column] = scales.xi_c, scales.c_star
            predicted[row, column] = predicted_convergence_depth(xi_c[row, column], c_star[row, column])
            progress.advance()
    return PhaseDiagram(activation.spec(), sw2_values, sb2_values, q_star, chi, xi_c, c_star, phases, predicted)


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
