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
from collections.abc import Callable
from dataclasses import asdict, dataclass

from initbench.nets.activations import Activation
from initbench.theory.fixed_points import PHASE_TOL, fixed_point
from initbench.theory.maps import chi1
from initbench.theory.quadrature import gaussian_moments

#: critical_gain searches σ_w² in this range, i.e. σ_w ∈ [0.01, 100].
GAIN_SQ_RANGE = (1e-4, 1e4)


def variance_preserving_gain(activation: Activation, sb2: float = 0.0) -> float | None:
    """The σ_w with σ_w²·E[φ(z)²] + σ_b² = 1 for z ~ N(0, 1), so unit variance maps to itself.

    .. math:: σ_w = √((1 − σ_b²) / E[φ(z)²])

    Returns None when no such σ_w exists (σ_b² ≥ 1, or φ ≡ 0 on the Gaussian). It is √2 for relu
    and 1 for linear.
    """
    if sb2 < 0:
        raise ValueError(f"σ_b² must be ≥ 0, got sb2 = {sb2}")
    second = gaussian_moments(activation, 1.0).second
    if sb2 >= 1 or second == 0:
        return None
    return math.sqrt((1 - sb2) / second)


def critical_gain(activation: Activation, sb2: float = 0.0) -> float | None:
    """The σ_w at the edge of chaos: χ₁(q*(σ_w²)) = 1, with q* from :func:`~initbench.theory.fixed_points.fixed_point`.

    Bisects χ₁ − 1 over σ_w² in GAIN_SQ_RANGE (σ_w ∈ [0.01, 100]). Where q* is unbounded, χ₁ is
    taken at q = ∞ if it has a closed form there (piecewise-linear φ), and otherwise counts as
    chaotic: L(q)/q ≥ 1 all the way up means σ_w²·E[φ'²] ≥ 1 there too, for φ with linear tails.
    For σ_b² = 0 it is √2 for relu (χ₁ = σ_w²/2 whatever q*), 1 for tanh (q* = 0 and χ₁ = σ_w² up
    to σ_w² = 1) and 1 for linear.

    Returns None when χ₁ − 1 has one sign over the whole range, or when it jumps over 0 instead
    of passing through it: gelu and silu with σ_b² = 0 go straight from q* = 0 with
    χ₁ = σ_w²/4 < 1 to an unbounded q*.
    """

    def excess(sw2: float) -> float:
        q_star = fixed_point(activation, sw2, sb2)
        chi = chi1(activation, sw2, q_star)
        return 1.0 if math.isnan(chi) else chi - 1

    lo, hi = GAIN_SQ_RANGE
    g_lo, g_hi = excess(lo), excess(hi)
    for end, g_end in ((lo, g_lo), (hi, g_hi)):
        if g_end == 0:
            return math.sqrt(end)
    if (g_lo > 0) == (g_hi > 0):
        return None
    lo, hi = _bisect(excess, lo, hi, g_lo)
    if max(abs(excess(lo)), abs(excess(hi))) > PHASE_TOL:
        return None  # χ₁ jumps over 1 here instead of passing through it
    return math.sqrt((lo + hi) / 2)


def _bisect(g: Callable[[float], float], lo: float, hi: float, g_lo: float, xtol: float = 0.0) -> tuple[float, float]:
    """A bracket [lo, hi] around a sign change of g, given one: g(lo) and g(hi) of opposite signs.

    Halves the bracket until it is at most ``xtol`` wide, or (xtol = 0) until lo and hi are
    adjacent floats, i.e. full relative precision for a root away from 0.
    """
    while hi - lo > xtol:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        g_mid = g(mid)
        if g_mid == 0:
            return mid, mid
        if (g_mid > 0) == (g_lo > 0):
            lo, g_lo = mid, g_mid
        else:
            hi = mid
    return lo, hi


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
        variance_preserving_gain=variance_preserving_gain(activation, sb2),
        critical_gain=critical_gain(activation, sb2),
        torch_gain=activation.torch_gain(),
    )
