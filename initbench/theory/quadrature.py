"""Gaussian expectations of a function of z ~ N(0, q), in one and two dimensions, and the
moments of φ that the maps need: E[φ], E[φ²], E[φ'²] and E[φ''φ]. All arithmetic is float64.

Closed forms where φ is piecewise linear (linear, relu, leaky_relu) and quadrature otherwise, with
φ' and φ'' taken by autograd from the activation itself, so a newly registered activation gets
every prediction of :mod:`initbench.theory` with no extra code.

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
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from initbench.nets.activations import Activation

TensorFn = Callable[[torch.Tensor], torch.Tensor]

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


def first_derivative(f: TensorFn) -> TensorFn:
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
    c = check_correlation(c)
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


def check_correlation(c: float) -> float:
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
