"""The order–chaos phase diagram over (σ_w², σ_b²), from theory: χ₁ at the fixed point q* (χ₁ = 1 is
the edge of chaos), the correlation depth scale ξ_c, and the depth at which two inputs'
correlation is predicted to have converged, ξ_c·ln(|c⁰ − c*| / CONVERGED).

The measured counterpart (real nets, stacked) is :mod:`initbench.experiments.phase`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from initbench.core.interfaces import Progress, SilentProgress
from initbench.nets.activations import Activation
from initbench.theory.fixed_points import depth_scales, fixed_point, fixed_point_phase
from initbench.theory.maps import chi1

START_CORRELATION = 0.2
CONVERGED = 0.05
PAIRS = 16


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
            q = fixed_point(activation, float(sw2), float(sb2))
            q_star[row, column] = q
            chi[row, column] = chi1(activation, float(sw2), q)
            phases[row, column] = fixed_point_phase(q, chi[row, column])
            if math.isfinite(q):
                scales = depth_scales(activation, float(sw2), float(sb2))
                xi_c[row, column], c_star[row, column] = scales.xi_c, scales.c_star
            predicted[row, column] = predicted_convergence_depth(xi_c[row, column], c_star[row, column])
            progress.advance()
    return PhaseDiagram(activation.spec(), sw2_values, sb2_values, q_star, chi, xi_c, c_star, phases, predicted)
