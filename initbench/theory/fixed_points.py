"""Where the maps settle, and how fast: the length map's fixed point q*, the correlation map's c*,
the depth scales ξ_q and ξ_c over which they are approached, and the phase (ordered, critical or
chaotic) that χ₁ at q* puts a net in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

from initbench.nets.activations import Activation
from initbench.theory.maps import chi1, correlation_map, length_map
from initbench.theory.quadrature import bivariate_gaussian_expectation, first_derivative, gaussian_moments

Phase = Literal["ordered", "critical", "chaotic"]

#: |χ₁ − 1| up to this counts as critical: well above the ~1e-12 precision of χ₁ at a
#: root-found gain, far below any deliberate departure from criticality.
PHASE_TOL = 1e-6
#: |L(q) − q| ≤ FIXED_POINT_RTOL·q counts as a fixed point (rounding in σ_w² = fan_in·Var(W)), and
#: only beyond it does L(q) − q have a sign.
FIXED_POINT_RTOL = 1e-12
#: fixed_point reports a variance that grows past this as unbounded (math.inf) ...
UNBOUNDED_Q = 1e300
#: ... and, where q = 0 is a fixed point, one that shrinks below COLLAPSED_Q·q¹ as 0.0.
COLLAPSED_Q = 1e-12
#: fixed_point steps up by ×4 below this q, by ×√q above it.
GROWTH_STEP_Q = 1e8


def _root(g: Callable[[float], float], lo: float, hi: float, g_lo: float, xtol: float = 0.0) -> float:
    """A root of g in the bracket [lo, hi] (g(lo) = g_lo and g(hi) of opposite signs).

    The Illinois variant of regula falsi: it keeps the bracket like bisection but converges
    superlinearly, which matters because every g here is a quadrature (the phase diagram solves
    hundreds of these). It stops when the bracket is ``xtol`` wide or a few ulps wide.
    """
    g_hi = g(hi)
    stale_side = 0
    while hi - lo > max(xtol, 4 * math.ulp(max(abs(lo), abs(hi)))):
        guess = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
        if not lo < guess < hi:
            guess = (lo + hi) / 2
        g_guess = g(guess)
        if g_guess == 0:
            return guess
        if (g_guess > 0) == (g_lo > 0):
            lo, g_lo = guess, g_guess
            if stale_side == -1:  # lo moved twice in a row: halve g_hi so hi moves next
                g_hi /= 2
            stale_side = -1
        else:
            hi, g_hi = guess, g_guess
            if stale_side == 1:
                g_lo /= 2
            stale_side = 1
    return (lo + hi) / 2


def fixed_point(activation: Activation, sw2: float, sb2: float, input_second_moment: float = 1.0) -> float:
    """The fixed point q* = σ_w²·E_{z~N(0,q*)}[φ(z)²] + σ_b² that the network's length map reaches.

    The map starts where :func:`~initbench.theory.propagate.propagate_forward` does, at q¹ = σ_w²·E[(x⁰)²] + σ_b². L is
    increasing in q (E[φ²] grows with q for every registered activation), so iterating it moves
    monotonically toward the first root of L(q) − q on the side where L(q¹) − q¹ points; that root
    is a stable fixed point. We bracket it with ×4 steps (×√q above GROWTH_STEP_Q) and solve for it, rather than iterate
    (near criticality iteration converges like 1/l, not geometrically).

    L(q) − q counts as positive or negative only beyond FIXED_POINT_RTOL·q: below that, rounding
    (in σ_w², and the quadrature's ~1e-14) decides its sign. So a map that stays above the diagonal
    by less than that, like elu at σ_w² = 2 (L(q) − q → σ_w²·α²/2 > 0 while q grows), is unbounded,
    not a root where noise first dips below 0 (near q ~ 1e14).

    Returns:
        q*; exactly 0.0 when q = 0 is a fixed point (φ(0)²·σ_w² + σ_b² = 0) and the variance
        shrinks below COLLAPSED_Q·q¹ on the way (tanh with σ_b² = 0 and σ_w² ≤ 1; linear
        with σ_w² < 1, σ_b² = 0); math.inf when it grows past UNBOUNDED_Q (linear σ_w² > 1,
        relu σ_w² > 2, elu σ_w² ≥ 2); q¹ itself when it is already a fixed point (linear σ_w² = 1
        or relu σ_w² = 2, with σ_b² = 0, where every q is one).
    """
    if sw2 < 0 or sb2 < 0 or not input_second_moment >= 0:
        raise ValueError(f"need σ_w² ≥ 0, σ_b² ≥ 0 and E[(x⁰)²] ≥ 0, got sw2 = {sw2}, sb2 = {sb2}, input_second_moment = {input_second_moment}")

    def excess(q: float) -> float:
        return length_map(activation, sw2, sb2, q) - q

    start = sw2 * input_second_moment + sb2  # q¹
    if start == 0:  # the first layer is all zeros; the second has variance L(0)
        start = length_map(activation, sw2, sb2, 0.0)
        if start == 0:
            return 0.0
    g_start = excess(start)
    # He's σ_w² = fan_in·(2/fan_in) comes out as 2.0000000000000004, and that one ulp must not
    # turn relu's critical line into "unbounded".
    if _sign(start, g_start) == 0:
        return start
    if g_start > 0:
        return _fixed_point_above(excess, start, g_start)
    return _fixed_point_below(excess, start, collapses=length_map(activation, sw2, sb2, 0.0) == 0)


def _sign(q: float, g: float) -> int:
    """+1 or −1 where L(q) − q = g is beyond rounding, else 0."""
    return 0 if abs(g) <= FIXED_POINT_RTOL * q else 1 if g > 0 else -1


def _fixed_point_above(excess: Callable[[float], float], start: float, g_start: float) -> float:
    """The first root of ``excess`` = L(q) − q above ``start``, where it is g_start > 0; math.inf
    when there is none up to UNBOUNDED_Q."""
    q = start
    lo, g_lo = start, g_start  # the last q with L(q) clearly above q
    while q <= UNBOUNDED_Q:
        # ×4 steps through every plausible q*, then ×√q, so that an unbounded map reaches
        # UNBOUNDED_Q in 25 steps instead of 500.
        q *= 4 if q < GROWTH_STEP_Q else math.sqrt(q)
        g_q = excess(q)
        direction = _sign(q, g_q)
        if direction < 0:
            return _root(excess, lo, q, g_lo)
        if direction > 0:
            lo, g_lo = q, g_q
    return math.inf


def _fixed_point_below(excess: Callable[[float], float], start: float, collapses: bool) -> float:
    """The first root of ``excess`` = L(q) − q below ``start``, where it is negative; 0.0 when
    q = 0 is a fixed point (``collapses``) and q falls below COLLAPSED_Q·start on the way."""
    q = start
    hi = start  # the last q with L(q) clearly below q
    while True:
        q /= 4
        if collapses and q < COLLAPSED_Q * start:
            return 0.0
        if q == 0:  # L(0) > 0, so the root lies in (0, hi)
            return _root(excess, 0.0, hi, excess(0.0))
        g_q = excess(q)
        direction = _sign(q, g_q)
        if direction > 0:
            return _root(excess, q, hi, g_q)
        if direction < 0:
            hi = q


def _correlation_fixed_point(activation: Activation, sw2: float, sb2: float, q_star: float) -> float:
    """c* at a known q*; see :func:`correlation_fixed_point`."""
    if not math.isfinite(q_star):
        return math.nan
    if q_star == 0 or chi1(activation, sw2, q_star) <= 1:
        return 1.0

    def excess(c: float) -> float:
        return correlation_map(activation, sw2, sb2, q_star, c) - c

    # Here the map's slope at c = 1 is χ₁ > 1, so excess < 0 just below 1, while
    # excess(0) = (σ_w²·E[φ]² + σ_b²)/q* ≥ 0. The map is a power series in c with non-negative
    # coefficients, hence convex on [0, 1]: exactly one root lies in [0, 1). Walk toward 1 until
    # excess turns negative, then bisect.
    lo, g_lo = 0.0, excess(0.0)
    if g_lo <= 0:  # ≥ 0 exactly; below it only by rounding (odd φ without bias: E[φ] = 0, so c* = 0)
        return 0.0
    for k in range(1, 53):
        c = 1.0 - 2.0**-k
        g_c = excess(c)
        if g_c < 0:
            return _root(excess, lo, c, g_lo, xtol=1e-15)
        lo, g_lo = c, g_c
    return 1.0  # χ₁ exceeds 1 by less than rounding can resolve


def correlation_fixed_point(activation: Activation, sw2: float, sb2: float, input_second_moment: float = 1.0) -> float:
    """The stable fixed point c* of the correlation map at q* = :func:`fixed_point`.

    c* = 1 in the ordered and critical phases (χ₁ ≤ 1: inputs become identical), c* < 1 in the
    chaotic phase (c* = 0 for odd φ with σ_b² = 0). Conventions: c* = 1 when q* = 0 (every input
    collapses to the same point); nan when q* is infinite.
    """
    return _correlation_fixed_point(activation, sw2, sb2, fixed_point(activation, sw2, sb2, input_second_moment))


class DepthScales(NamedTuple):
    """Depths over which the length (ξ_q) and the correlation (ξ_c) approach their fixed points,
    with the correlation fixed point c* they were taken at."""

    xi_q: float
    xi_c: float
    c_star: float


def _depth_scale(rate: float) -> float:
    """ξ = −1/ln|rate| for a perturbation scaling like rateˡ; inf when |rate| ≥ 1, 0 when rate = 0."""
    magnitude = abs(rate)
    if magnitude >= 1:
        return math.inf
    if magnitude == 0:
        return 0.0
    return -1.0 / math.log(magnitude)


def depth_scales(activation: Activation, sw2: float, sb2: float, input_second_moment: float = 1.0) -> DepthScales:
    """ξ_q and ξ_c at the fixed points q* and c* (Schoenholz et al. 2017).

    .. math::
        ξ_q⁻¹ = −ln(χ₁ + σ_w²·E[φ''(z)φ(z)]),   ξ_c⁻¹ = −ln(σ_w²·E[φ'(u₁)φ'(u₂)]) at c*

    The first log's argument is the slope L'(q*) of the length map. With c* = 1 the second is
    ξ_c = −1/ln χ₁. Returns inf at criticality (χ₁ = 1), and nan for all three when q* is
    infinite. At q* = 0 (e.g. tanh, σ_b² = 0, σ_w² < 1) the values are those at q* → 0, which are
    the limits as σ_b² → 0⁺: ξ_q = ξ_c = −1/ln(σ_w²·φ'(0)²).
    """
    q_star = fixed_point(activation, sw2, sb2, input_second_moment)
    if not math.isfinite(q_star):
        return DepthScales(math.nan, math.nan, math.nan)
    moments = gaussian_moments(activation, q_star)
    chi = sw2 * moments.derivative_sq
    xi_q = _depth_scale(chi + sw2 * moments.second_derivative_phi)
    c_star = _correlation_fixed_point(activation, sw2, sb2, q_star)
    if c_star == 1:
        return DepthScales(xi_q, _depth_scale(chi), c_star)
    derivative = first_derivative(activation)
    chi_c = sw2 * bivariate_gaussian_expectation(derivative, derivative, q_star, c_star)
    return DepthScales(xi_q, _depth_scale(chi_c), c_star)


def phase_of(chi: float, tol: float = PHASE_TOL) -> Phase:
    """Classify χ₁: "ordered" (χ₁ < 1), "critical" (|χ₁ − 1| ≤ tol) or "chaotic" (χ₁ > 1)."""
    if math.isnan(chi):
        raise ValueError("χ₁ is nan (is the fixed point q* infinite?); no phase is defined")
    if abs(chi - 1) <= tol:
        return "critical"
    return "ordered" if chi < 1 else "chaotic"


def fixed_point_phase(q_star: float, chi: float) -> Phase | Literal["unbounded"]:
    """The phase at the fixed point q*: "unbounded" where there is none (q* = inf: the variance
    grows without limit, whatever χ₁ per layer says), else :func:`phase_of` of χ₁ at q*."""
    return "unbounded" if q_star == math.inf else phase_of(chi)
