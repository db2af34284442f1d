"""Mean-field signal propagation: what infinitely wide nets with i.i.d. weights should do.

Pure functions of an activation φ and the per-layer weight and bias scales σ_w², σ_b²
(``Var(W_ij) = σ_w²/fan_in``, ``Var(b_i) = σ_b²``), after Poole et al. 2016 ("Exponential
expressivity in deep neural networks through transient chaos") and Schoenholz et al. 2017
("Deep information propagation"). Layers are numbered 1..depth; ``hˡ`` is the pre-activation,
``xˡ = φ(hˡ)``, and ``q`` always means a pre-activation variance. All arithmetic is float64.

Gaussian expectations use closed forms where φ is piecewise linear (linear, relu, leaky_relu) and
quadrature otherwise, with φ' and φ'' taken by autograd from the activation itself, so a newly
registered activation gets every prediction here with no extra code.

Why not Gauss–Hermite: ``hermite_e.hermegauss`` converges algebraically, not exponentially, when
φ has a kink (selu, elu, softsign, and φ'²), and slowly when φ is sharp on the scale of √q
(tanh at q = 100 is still 2% off with 200 nodes; numpy's weights overflow from ~380 nodes).

Why panels: φ lives on the scale |h| ~ 1 (its kink at 0, tanh's and sigmoid's bend, gelu's dip),
the Gaussian on the scale √q. For large q, φ'² is a peak of width ~1 under a Gaussian ~√q wide; for
small q the Gaussian is a peak inside φ's smooth region. So we integrate out to R = 12 standard
deviations (the dropped tail weighs e^(−72) ≈ 5e-32), splitting the range at h = 0 (where every
registered φ has its only kink) and at h = ±4ᵏ, k = 0, 1, ..., wherever those fall inside it, with
Gauss–Legendre nodes on every panel. Panels that grow geometrically away from the kink resolve φ
on its own scale and the Gaussian on its, so the rule converges exponentially for every q; a single
panel per half-line misses the peak of φ'² above q ≈ 1e3 (7% off at q = 1e5 for tanh). The 2-D
rule nests the same 1-D rule: E[f(u₁)·g(u₂)] = E_{u₁}[f(u₁)·E[g(u₂) | u₁]], the inner Gaussian
split at its mean, at u₂ = 0 and at u₂ = ±4ᵏ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple

import numpy as np
import torch

from initbench.nets.activations import Activation

TensorFn = Callable[[torch.Tensor], torch.Tensor]
Phase = Literal["ordered", "critical", "chaotic"]

#: Gauss–Legendre nodes per panel: 32 matches scipy's adaptive quadrature to ~1e-14 relative for
#: every registered activation over q ∈ [1e-6, 1e8]; 24 is 2e-12 off at q = 1e-6, where one 12σ
#: panel per half-line holds the whole Gaussian. Tests check the doubled degree too.
QUADRATURE_DEGREE = 32
#: Nodes per panel, in each dimension, of the nested 2-D rule, whose cost is the square of the 1-D
#: rule's: 32 matches the closed forms of erf and relu to ~2e-12 of E[φ²] over q ∈ [1e-6, 1e8] and
#: c ∈ [−1, 1]; 24 is 3e-9 off for relu at q ≤ 1e-2, where two 12σ panels hold the whole Gaussian.
BIVARIATE_DEGREE = 32
#: Truncation radius of the quadrature, in standard deviations.
TAIL_SIGMAS = 12.0
#: Panel edges sit at h = 0 and ±PANEL_RATIOᵏ: φ's own scale |h| ~ 1, then geometrically out to 12σ.
PANEL_RATIO = 4.0
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
#: critical_gain searches σ_w² in this range, i.e. σ_w ∈ [0.01, 100].
GAIN_SQ_RANGE = (1e-4, 1e4)

_FLOAT = torch.float64
#: Where one-sided derivatives at 0 are taken: so close that f'(±ε) = f'(0) exactly in float64
#: wherever f' is smooth, as ε² vanishes next to 1.
_ONE_SIDE = 1e-100


def _with_derivatives(f: TensorFn, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """f(h), f'(h) and f''(h) by autograd; f is elementwise, so ∂(Σᵢ f(hᵢ))/∂h = f'(h)."""
    x = h.detach().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)
        (first,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        # A derivative that no longer depends on h (f linear) carries no graph: f'' = 0.
        second = torch.autograd.grad(first.sum(), x)[0] if first.requires_grad else torch.zeros_like(x)
    return y.detach(), first.detach(), second


def _derivative(f: TensorFn) -> TensorFn:
    """f' as a torch function."""
    return lambda h: _with_derivatives(f, h)[1]


@lru_cache(maxsize=8)
def _unit_legendre(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1] (cached: leggauss costs milliseconds)."""
    nodes, weights = np.polynomial.legendre.leggauss(degree)
    return (nodes + 1) / 2, weights / 2


def _activation_scale_edges(reach: float) -> np.ndarray:
    """0 and ±PANEL_RATIOᵏ (k = 0, 1, ...) that lie strictly inside (−reach, reach), ascending."""
    powers = []
    power = 1.0
    while power < reach:  # false for nan
        powers.append(power)
        power *= PANEL_RATIO
    return np.array([-p for p in reversed(powers)] + [0.0] + powers)


def _standard_normal_panels(edges: np.ndarray, degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes x and weights w, Σ wᵢ f(xᵢ) ≈ E[f(x)] for x ~ N(0, 1), from Gauss–Legendre on every
    panel [edges[..., j], edges[..., j+1]] (ascending, covering [−TAIL_SIGMAS, TAIL_SIGMAS]).

    Leading dimensions of ``edges`` are independent rules; a zero-width panel weighs nothing.
    (numpy, not torch: these arrays are small, and numpy's per-op overhead is a fraction of torch's.)
    """
    nodes, weights = _unit_legendre(degree)
    width = np.diff(edges)[..., None]
    x = edges[..., :-1, None] + width * nodes
    w = (width * weights) * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    shape = (*edges.shape[:-1], -1)
    return torch.from_numpy(x.reshape(shape)), torch.from_numpy(w.reshape(shape))


@lru_cache(maxsize=1024)
def _normal_nodes(q: float, degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights for z ~ N(0, q), split at z = 0 and z = ±PANEL_RATIOᵏ; q = 0 is the point
    mass at 0. An infinite q gives nodes at ±inf (and nan gives nan), so f decides what results.

    Cached (callers must not modify the tensors): the forward and backward recursions, and the
    fixed point that the depth scales solve again, ask for the same q's.
    """
    if q < 0:
        raise ValueError(f"a variance must be ≥ 0, got q = {q}")
    if q == 0:
        return torch.zeros(1, dtype=_FLOAT), torch.ones(1, dtype=_FLOAT)
    root = math.sqrt(q)
    inner = _activation_scale_edges(TAIL_SIGMAS * root) / root if math.isfinite(root) else np.zeros(1)
    x, w = _standard_normal_panels(np.concatenate([[-TAIL_SIGMAS], inner, [TAIL_SIGMAS]]), degree)
    return root * x, w


def gaussian_expectation(f: TensorFn, q: float, degree: int = QUADRATURE_DEGREE) -> float:
    """E_{z~N(0,q)}[f(z)] by panelled quadrature (see the module docstring); f(0) when q = 0.

    .. math:: E[f(z)] = ∫ f(√q·x)·e^(−x²/2)/√(2π) dx ≈ Σᵢ wᵢ·f(√q·xᵢ)

    Args:
        f: an elementwise torch function, evaluated on a float64 tensor of nodes.
        q: the variance (0, inf and nan are accepted; inf and nan give what f gives there).
        degree: Gauss–Legendre nodes per panel.
    """
    h, w = _normal_nodes(q, degree)
    return float((w * f(h)).sum())


def bivariate_gaussian_expectation(f: TensorFn, g: TensorFn, q: float, c: float, degree: int = BIVARIATE_DEGREE) -> float:
    """E[f(u₁)·g(u₂)] for u₁, u₂ ~ N(0, q) with correlation c, by nested quadrature.

    .. math::
        E[f(u₁)·g(u₂)] = E_{u₁}[f(u₁)·E[g(u₂) | u₁]],   u₂ | u₁ ~ N(c·u₁, q·(1 − c²))

    The outer expectation is :func:`gaussian_expectation`'s rule; the inner one, for every outer
    node, is split at its mean, at u₂ = 0 (g's kink) and at u₂ = ±PANEL_RATIOᵏ, so both factors
    are resolved on their own scale whatever q and c. At c = ±1, u₂ = c·u₁ exactly.

    Args:
        f: elementwise torch function of u₁.
        g: elementwise torch function of u₂.
        q: the common variance, ≥ 0.
        c: the correlation, in [−1, 1].
        degree: Gauss–Legendre nodes per panel, in each dimension.
    """
    if q < 0:
        raise ValueError(f"a variance must be ≥ 0, got q = {q}")
    c = _check_correlation(c)
    if q == 0:
        zero = torch.zeros(1, dtype=_FLOAT)
        return float(f(zero).item() * g(zero).item())
    u1, w1 = _normal_nodes(q, degree)
    conditional_std = math.sqrt(q * (1 - c) * (1 + c))  # not 1 − c²: c near 1 would lose digits
    if conditional_std == 0:
        return float((w1 * f(u1) * g(c * u1)).sum())
    mean = c * u1
    means = mean.numpy()
    kinks = _activation_scale_edges(float(np.abs(means).max()) + TAIL_SIGMAS * conditional_std)
    # The inner rule in standardized units t = (u₂ − c·u₁)/σ: g's panel edges, clipped to the
    # ±TAIL_SIGMAS window of each row (edges outside it become zero-width panels), and t = 0.
    inner = np.clip((kinks - means[:, None]) / conditional_std, -TAIL_SIGMAS, TAIL_SIGMAS)
    ends = np.broadcast_to(np.array([-TAIL_SIGMAS, 0.0, TAIL_SIGMAS]), (len(means), 3))
    t, w2 = _standard_normal_panels(np.sort(np.concatenate([ends, inner], axis=1), axis=1), degree)
    conditional = (w2 * g(mean[:, None] + conditional_std * t)).sum(dim=1)
    return float((w1 * f(u1) * conditional).sum())


def _check_correlation(c: float) -> float:
    """c itself, clipped to [−1, 1] when it is out by rounding only."""
    if not -1 - 1e-12 <= c <= 1 + 1e-12:
        raise ValueError(f"a correlation must lie in [-1, 1], got c = {c}")
    return min(max(c, -1.0), 1.0)


@dataclass(frozen=True)
class GaussianMoments:
    """Moments of φ(z) for z ~ N(0, q): E[φ], E[φ²], E[φ'²] and E[φ''·φ]."""

    mean: float
    second: float
    derivative_sq: float
    second_derivative_phi: float

    @property
    def variance(self) -> float:
        """Var[φ(z)] = E[φ²] − E[φ]², never negative from rounding (nan stays nan)."""
        variance = self.second - self.mean * self.mean
        return 0.0 if variance < 0 else variance


def gaussian_moments(activation: Activation, q: float, degree: int = QUADRATURE_DEGREE) -> GaussianMoments:
    """E[φ], E[φ²], E[φ'²] and E[φ''φ] for z ~ N(0, q).

    Piecewise-linear φ with slopes (a, b) for z > 0 and z < 0 has closed forms:

    .. math::
        E[φ] = (a − b)·√(q/2π),  E[φ²] = q·(a² + b²)/2,  E[φ'²] = (a² + b²)/2,  E[φ''φ] = 0

    (φ'' is a Dirac mass at 0, where φ = 0.) Any other φ goes through quadrature, with φ' and φ''
    from autograd. Autograd's φ'' misses the Dirac mass of a jump in φ' (selu's at 0); that term
    is the jump times φ at the kink, which is 0 for every registered activation.
    """
    slopes = activation.piecewise_linear_slopes()
    if slopes is not None:
        a, b = slopes
        half_sum_sq = (a * a + b * b) / 2
        # Written so that linear (a = b) keeps mean 0 even when q overflows to inf.
        mean = 0.0 if a == b else (a - b) * math.sqrt(q / (2 * math.pi))
        return GaussianMoments(mean=mean, second=q * half_sum_sq, derivative_sq=half_sum_sq, second_derivative_phi=0.0)
    if q == 0:
        return _moments_at_zero(activation)
    h, w = _normal_nodes(q, degree)
    phi, d1, d2 = _with_derivatives(activation, h)
    return GaussianMoments(
        mean=float((w * phi).sum()),
        second=float((w * phi * phi).sum()),
        derivative_sq=float((w * d1 * d1).sum()),
        second_derivative_phi=float((w * d2 * phi).sum()),
    )


def _moments_at_zero(activation: Activation) -> GaussianMoments:
    """The limit q → 0⁺ of :func:`gaussian_moments`, for φ continuous and smooth on each side of 0.

    φ(0) gives E[φ] and E[φ²]; derivatives are averaged over the two sides of 0, where they may
    differ (selu's φ' jumps from λα to λ), as N(0, q) puts half its mass on each side.
    """
    phi0 = float(activation(torch.zeros(1, dtype=_FLOAT)).item())
    _, d1, d2 = _with_derivatives(activation, torch.tensor([-_ONE_SIDE, _ONE_SIDE], dtype=_FLOAT))
    return GaussianMoments(
        mean=phi0, second=phi0 * phi0, derivative_sq=float((d1 * d1).mean()), second_derivative_phi=phi0 * float(d2.mean())
    )


def _second_moment(activation: Activation, q: float) -> float:
    """E[φ(z)²], z ~ N(0, q): all the length map needs, without the cost of autograd."""
    slopes = activation.piecewise_linear_slopes()
    if slopes is not None:
        a, b = slopes
        return q * (a * a + b * b) / 2
    return gaussian_expectation(lambda h: activation(h).square(), q)


def length_map(activation: Activation, sw2: float, sb2: float, q: float) -> float:
    """The next layer's pre-activation variance: σ_w²·E_{z~N(0,q)}[φ(z)²] + σ_b²."""
    return sw2 * _second_moment(activation, q) + sb2


def chi1(activation: Activation, sw2: float, q: float) -> float:
    """The order–chaos parameter χ₁ = σ_w²·E_{z~N(0,q)}[φ'(z)²] (evaluate it at q = q*)."""
    return sw2 * gaussian_moments(activation, q).derivative_sq


def _per_layer(value: float | Sequence[float], depth: int, name: str) -> list[float]:
    """A scalar repeated ``depth`` times, or a per-layer sequence checked to have ``depth`` entries."""
    values = np.asarray(value, dtype=np.float64)
    if values.ndim == 0:
        return [float(values)] * depth
    if values.shape != (depth,):
        raise ValueError(f"{name} has shape {values.shape}, expected one entry per layer ({depth})")
    return [float(v) for v in values]


@dataclass(frozen=True, eq=False)
class ForwardPrediction:
    """Per-layer mean-field predictions for layers 1..depth (index 0 is layer 1).

    Attributes:
        q: pre-activation variance qˡ.
        pre_std: √qˡ.
        post_mean: E[φ(z)], z ~ N(0, qˡ).
        post_std: √(E[φ(z)²] − E[φ(z)]²), the std that the classic experiments print.
        chi1: σ_w²⁽ˡ⁾·E[φ'(z)²], layer l's own σ_w² at layer l's qˡ.
    """

    q: np.ndarray
    pre_std: np.ndarray
    post_mean: np.ndarray
    post_std: np.ndarray
    chi1: np.ndarray


def propagate_forward(
    activation: Activation,
    sw2: float | Sequence[float],
    sb2: float | Sequence[float],
    depth: int,
    input_second_moment: float = 1.0,
) -> ForwardPrediction:
    """Iterate the length map through ``depth`` layers.

    .. math:: q¹ = σ_w²⁽¹⁾·E[(x⁰)²] + σ_b²⁽¹⁾,   qˡ = σ_w²⁽ˡ⁾·E_{z~N(0,qˡ⁻¹)}[φ(z)²] + σ_b²⁽ˡ⁾

    A variance that overflows gives inf (and nan where inf·0 appears), never an exception.

    Args:
        activation: φ, the same at every layer.
        sw2: σ_w² = fan_in·Var(W_ij), one number or one per layer.
        sb2: σ_b², one number or one per layer.
        depth: number of layers.
        input_second_moment: E[(x⁰)²], 1 for x⁰ ~ N(0, 1).
    """
    sw2s, sb2s = _per_layer(sw2, depth, "sw2"), _per_layer(sb2, depth, "sb2")
    rows = []
    second = float(input_second_moment)
    for layer in range(depth):
        q = sw2s[layer] * second + sb2s[layer]
        moments = gaussian_moments(activation, q)
        rows.append((q, math.sqrt(q), moments.mean, math.sqrt(moments.variance), sw2s[layer] * moments.derivative_sq))
        second = moments.second
    columns = np.array(rows, dtype=np.float64).reshape(depth, 5).T
    return ForwardPrediction(*columns)


def propagate_backward(
    activation: Activation,
    sw2: float | Sequence[float],
    q: Sequence[float],
    last_grad_var: float,
    fan_ratio: float | Sequence[float] = 1.0,
) -> np.ndarray:
    """Variance of dLoss/dhˡ for layers 1..depth, given its variance at layer depth.

    With h^(l+1) = W^(l+1)·φ(hˡ) + b, the gradient is dL/dhˡ = φ'(hˡ) ⊙ (W^(l+1))ᵀ dL/dh^(l+1).
    Treating the backward weights as independent of the forward pass (the usual mean-field
    assumption) and Var(W^(l+1)) = σ_w²⁽ˡ⁺¹⁾/fan_in⁽ˡ⁺¹⁾:

    .. math:: q̃ˡ = q̃ˡ⁺¹ · σ_w²⁽ˡ⁺¹⁾ · (fan_out⁽ˡ⁺¹⁾/fan_in⁽ˡ⁺¹⁾) · E_{z~N(0,qˡ)}[φ'(z)²]

    so layer l+1's weights meet layer l's φ'. Per-layer ``sw2`` and ``fan_ratio`` are indexed by
    layer like ``q``; the entries for layer 1 are unused (they would act on dL/dx⁰). Square layers
    with a constant σ_w² make q̃ shrink or grow by χ₁ per layer. The std is the square root.

    Args:
        activation: φ.
        sw2: σ_w², one number or one per layer.
        q: the pre-activation variances q¹..q^depth, e.g. ``propagate_forward(...).q``.
        last_grad_var: Var(dL/dh^depth).
        fan_ratio: fan_out/fan_in of each layer's weight, one number or one per layer.
    """
    depth = len(q)
    sw2s, ratios = _per_layer(sw2, depth, "sw2"), _per_layer(fan_ratio, depth, "fan_ratio")
    grad_var = [0.0] * depth
    grad_var[-1] = float(last_grad_var)
    for layer in range(depth - 2, -1, -1):
        derivative_sq = gaussian_moments(activation, float(q[layer])).derivative_sq
        grad_var[layer] = grad_var[layer + 1] * sw2s[layer + 1] * ratios[layer + 1] * derivative_sq
    return np.array(grad_var, dtype=np.float64)


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

    The map starts where :func:`propagate_forward` does, at q¹ = σ_w²·E[(x⁰)²] + σ_b². L is
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

    def sign(q: float, g: float) -> int:
        """+1 or −1 where L(q) − q = g is beyond rounding, else 0."""
        return 0 if abs(g) <= FIXED_POINT_RTOL * q else 1 if g > 0 else -1

    start = sw2 * input_second_moment + sb2  # q¹
    if start == 0:  # the first layer is all zeros; the second has variance L(0)
        start = length_map(activation, sw2, sb2, 0.0)
        if start == 0:
            return 0.0
    g_start = excess(start)
    # He's σ_w² = fan_in·(2/fan_in) comes out as 2.0000000000000004, and that one ulp must not
    # turn relu's critical line into "unbounded".
    if sign(start, g_start) == 0:
        return start
    q = start
    if g_start > 0:
        lo, g_lo = start, g_start  # the last q with L(q) clearly above q
        while q <= UNBOUNDED_Q:
            # ×4 steps through every plausible q*, then ×√q, so that an unbounded map reaches
            # UNBOUNDED_Q in 25 steps instead of 500.
            q *= 4 if q < GROWTH_STEP_Q else math.sqrt(q)
            g_q = excess(q)
            direction = sign(q, g_q)
            if direction < 0:
                return _root(excess, lo, q, g_lo)
            if direction > 0:
                lo, g_lo = q, g_q
        return math.inf
    collapses = length_map(activation, sw2, sb2, 0.0) == 0
    hi = start  # the last q with L(q) clearly below q
    while True:
        q /= 4
        if collapses and q < COLLAPSED_Q * start:
            return 0.0
        if q == 0:  # L(0) > 0, so the root lies in (0, hi)
            return _root(excess, 0.0, hi, excess(0.0))
        g_q = excess(q)
        direction = sign(q, g_q)
        if direction > 0:
            return _root(excess, q, hi, g_q)
        if direction < 0:
            hi = q


def _arccos_kernel(c: float) -> float:
    """E[relu(v₁)·relu(v₂)] for unit-variance v₁, v₂ with correlation c (Cho & Saul 2009).

    .. math:: k(c) = (√(1−c²) + (π − arccos c)·c) / (2π)
    """
    return (math.sqrt(max(1.0 - c * c, 0.0)) + (math.pi - math.acos(c)) * c) / (2 * math.pi)


def correlation_map(activation: Activation, sw2: float, sb2: float, q_star: float, c: float) -> float:
    """The next layer's correlation between two inputs, both at variance q*.

    .. math:: c' = (σ_w²·E[φ(u₁)φ(u₂)] + σ_b²) / q*,  u₁ = √q*·z₁,  u₂ = √q*·(c·z₁ + √(1−c²)·z₂)

    For φ = a·relu(u) − b·relu(−u) (slopes a, b), expanding the product and using
    corr(u₁, −u₂) = −c gives E[φ(u₁)φ(u₂)] = q*·((a² + b²)·k(c) − 2ab·k(−c)) with the arc-cosine
    kernel k; for relu at σ_w² = 2, σ_b² = 0 this is c' = (√(1−c²) + (π − arccos c)·c)/π.

    Args:
        q_star: the common pre-activation variance, > 0 and finite (normally the fixed point).
        c: the correlation of the two pre-activations, in [−1, 1].
    """
    if not 0 < q_star < math.inf:
        raise ValueError(f"the correlation map needs 0 < q* < inf, got q* = {q_star}")
    c = _check_correlation(c)
    slopes = activation.piecewise_linear_slopes()
    if slopes is not None:
        a, b = slopes
        cross = q_star * ((a * a + b * b) * _arccos_kernel(c) - 2 * a * b * _arccos_kernel(-c))
    else:
        cross = bivariate_gaussian_expectation(activation, activation, q_star, c)
    return (sw2 * cross + sb2) / q_star


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
    derivative = _derivative(activation)
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
    grows without limit, whatever χ₁ per layer says), else the phase of χ₁ at q* (:func:`phase_of`)."""
    return "unbounded" if q_star == math.inf else phase_of(chi)


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
    """The σ_w at the edge of chaos: χ₁(q*(σ_w²)) = 1, with q* from :func:`fixed_point`.

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


def propagate_residual(
    activation: Activation, sw2_inner: float, sw2_outer: float, sb2: float, depth: int, input_second_moment: float = 1.0
) -> ForwardPrediction:
    """Mean-field variances through ``depth`` residual blocks x ← x + W₂ φ(W₁ x + b₁) + b₂.

    With Var(W₁) = σ₁²/N, Var(W₂) = σ₂²/N and Var(b) = σ_b², the block's pre-activation has
    variance hˡ ~ N(0, σ₁²·vˡ⁻¹ + σ_b²), and the residual stream's second moment grows as

    .. math:: vˡ = vˡ⁻¹ + σ₂²·E_{z~N(0, σ₁²vˡ⁻¹ + σ_b²)}[φ(z)²] + σ_b²

    (the branch is independent of the stream and zero-mean). For ReLU with He on both layers,
    σ₂²·E[φ(z)²] = vˡ⁻¹·(2·2/2): v triples every block. The stream stays zero-mean, so its std is
    √vˡ. ``chi1`` is the block's mean squared Jacobian singular value, 1 + σ₁²σ₂²·E[φ'(z)²].

    Returns a :class:`ForwardPrediction` whose ``q`` and ``post_std`` describe the block outputs
    and whose ``pre_std`` is the std of h inside the branch.
    """
    rows = []
    second = float(input_second_moment)
    for _ in range(depth):
        q_branch = sw2_inner * second + sb2
        moments = gaussian_moments(activation, q_branch)
        second = second + sw2_outer * moments.second + sb2
        rows.append((second, math.sqrt(q_branch), 0.0, math.sqrt(second), 1.0 + sw2_inner * sw2_outer * moments.derivative_sq))
    columns = np.array(rows, dtype=np.float64).reshape(depth, 5).T
    return ForwardPrediction(*columns)
