"""The spectrum of the input–output Jacobian at init, from free probability: its mean, variance
and largest eigenvalue, and the exact Fuss–Catalan law of a linear Gaussian net.

After Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning through
dynamical isometry: theory and practice" (PSG17), and 2018, "The emergence of spectral
universality in deep networks" (PSG18).

**The net.** A plain MLP of ``depth`` = L layers of width N → ∞, hˡ = Wˡ·xˡ⁻¹ + bˡ and
xˡ = φ(hˡ), every layer at the length map's fixed point q* (the input scaled so that it starts
there). Its Jacobian is J = ∂x^L/∂x⁰ = D_L·W_L ⋯ D_1·W_1 with D_l = diag(φ'(hˡ)): L weight
matrices and L diagonals, the last layer's φ' included. λ are the eigenvalues of JJᵀ (the squared
singular values of J).

**Where it holds**, so that a caller can leave the theory out elsewhere:

- a plain MLP (no residual branch, no normalization layer, no convolution: these change J's
  product structure), square hidden layers;
- φ with φ' defined almost everywhere (relu's kink is fine; φ' need not be continuous), and q*
  finite (see :func:`~initbench.theory.fixed_points.fixed_point`);
- weights either ``"gaussian"``: i.i.d. zero-mean entries of variance σ_w²/N (Gaussian; by the
  universality of the Marchenko–Pastur law also uniform or truncated-normal entries, but not a
  non-zero mean), or ``"orthogonal"``: σ_w times a Haar orthogonal matrix;
- the limit N → ∞ at fixed L. At finite width the spectrum's variance has a bias that grows
  like L/N, and every seed's spectrum has its own overall scale (Hanin & Nica 2019).

**The S-transform.** A spectral measure with moments m_k has ψ(x) = Σ_{k≥1} m_k·xᵏ and
S(z) = (1 + z)/z · ψ⁻¹(z); S multiplies under products of free matrices, so

.. math:: S_{JJᵀ}(z) = ∏_l S_{W_lᵀW_l}(z)·S_{D_l²}(z) = [S_{WᵀW}(z)·S_{D²}(z)]^L,

with S_{WᵀW}(z) = 1/(σ_w²·(1 + z)) for Gaussian weights (Marchenko–Pastur at ratio 1) and 1/σ_w²
for orthogonal ones. Expanding S(z) = (1/m₁)·(1 − (m₂/m₁² − 1)·z + O(z²)) for each factor (PSG17
write S_{WᵀW} = σ_w⁻²·(1 + s₁·z + …), so s₁ = −1 for Gaussian and 0 for orthogonal weights)
gives, with μ_k = E[φ'(√q*·z)^{2k}] and χ = σ_w²·μ₁:

.. math::
    m₁ = χ^L,   m₂/m₁² − 1 = L·(μ₂/μ₁² − 1 − s₁),   Var λ = L·(μ₂/μ₁² − 1 − s₁)·χ^{2L}.

This is the issue's formula; PSG17 state it at χ = 1 (their eq. for σ²_{JJᵀ}), where the factor
χ^{2L} is 1. Checked here by the expansion above and, in the tests, against the Fuss–Catalan
moments (φ linear: μ₂/μ₁² = 1, so m₂/m₁² − 1 = L) and against measured spectra.

**The edge.** Outside the support, ψ(1/w) = w·G(w) − 1 is decreasing in w > λ_max, so its inverse
w(z) = (1 + z)/(z·S(z)) is decreasing in z from w(0⁺) = ∞ down to λ_max, where it stops being
invertible (dw/dz = 0, PSG18); the largest eigenvalue is λ_max = inf_{z>0} w(z). For the
Fuss–Catalan law (S = (1 + z)^{−L}) that is (L + 1)^{L+1}/L^L, at z = 1/L.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from initbench.nets.activations import Activation
from initbench.theory.quadrature import TAIL_SIGMAS, first_derivative, gaussian_expectation, gaussian_moments

WeightEnsemble = Literal["gaussian", "orthogonal"]

#: s₁, the first-order coefficient of S_{WᵀW}(z)·σ_w² = 1 + s₁·z + O(z²) (PSG17).
S1_OF_ENSEMBLE: dict[str, float] = {"gaussian": -1.0, "orthogonal": 0.0}

#: The edge search keeps x = ψ_{D²}⁻¹(z) below (1 − EDGE_POLE_MARGIN)/max φ'², where ψ_{D²} has its
#: pole: closer, the quadrature's atoms (not φ'² itself) decide w(z).
EDGE_POLE_MARGIN = 1e-9
#: Points of the coarse grid over which the edge search brackets the minimum of w(z).
EDGE_GRID_POINTS = 240
#: Points of the grid over which max φ'² is bracketed before it is refined.
DERIVATIVE_GRID_POINTS = 4001


def _check_ensemble(weights: str) -> float:
    if weights not in S1_OF_ENSEMBLE:
        raise ValueError(f"weights must be one of {sorted(S1_OF_ENSEMBLE)}, got {weights!r}")
    return S1_OF_ENSEMBLE[weights]


def _check_q_star(q_star: float) -> None:
    if not 0 <= q_star < math.inf:
        raise ValueError(f"the spectrum's theory needs a finite fixed point q* ≥ 0, got q* = {q_star}")


def derivative_moments(activation: Activation, q_star: float) -> tuple[float, float]:
    """(μ₁, μ₂) with μ_k = E_{z~N(0,1)}[φ'(√q*·z)^{2k}], the first two moments of D².

    Piecewise-linear φ with slopes (a, b) has μ_k = (a^{2k} + b^{2k})/2; any other φ goes through
    the panelled quadrature, with φ' by autograd.
    """
    _check_q_star(q_star)
    slopes = activation.piecewise_linear_slopes()
    if slopes is not None:
        a, b = slopes
        return (a**2 + b**2) / 2, (a**4 + b**4) / 2
    mu1 = gaussian_moments(activation, q_star).derivative_sq
    derivative = first_derivative(activation)
    mu2 = gaussian_expectation(lambda h: derivative(h) ** 4, q_star)
    return mu1, mu2


def theory_mean(activation: Activation, sw2: float, q_star: float, depth: int) -> float:
    """The mean of λ: m₁ = χ^L with χ = σ_w²·μ₁, whatever the weights' ensemble."""
    mu1, _ = derivative_moments(activation, q_star)
    return (sw2 * mu1) ** depth


def theory_nvar(activation: Activation, q_star: float, depth: int, weights: WeightEnsemble) -> float:
    """Var λ / (E λ)² = L·(μ₂/μ₁² − 1 − s₁): independent of σ_w², linear in depth.

    0 for a linear net with orthogonal weights (every λ = σ_w^{2L}); L for a linear Gaussian net
    (Fuss–Catalan); L·(μ₂/μ₁² − 1) for orthogonal weights, which is O(q*) for tanh: small q* gives
    dynamical isometry. Relu has μ₂/μ₁² = 2, so L with orthogonal and 2L with Gaussian weights.
    """
    s1 = _check_ensemble(weights)
    mu1, mu2 = derivative_moments(activation, q_star)
    if mu1 == 0:
        raise ValueError("E[φ'²] = 0 at q*: the Jacobian is zero and its normalised variance undefined")
    return depth * (mu2 / mu1**2 - 1 - s1)


def theory_variance(activation: Activation, sw2: float, q_star: float, depth: int, weights: WeightEnsemble) -> float:
    """Var λ = L·(μ₂/μ₁² − 1 − s₁)·χ^{2L} (see the module docstring for the derivation)."""
    return theory_nvar(activation, q_star, depth, weights) * theory_mean(activation, sw2, q_star, depth) ** 2


def critical_point(activation: Activation, q_star: float) -> tuple[float, float]:
    """(σ_w², σ_b²) on the critical line χ₁ = 1 whose fixed point is q*, as PSG17 parametrize it.

    .. math:: σ_w² = 1/E[φ'(√q*·z)²],   σ_b² = q* − σ_w²·E[φ(√q*·z)²]

    Raises ValueError where σ_b² would be negative (no critical net has this q*).
    """
    _check_q_star(q_star)
    moments = gaussian_moments(activation, q_star)
    sw2 = 1.0 / moments.derivative_sq
    sb2 = q_star - sw2 * moments.second
    if sb2 < -1e-12 * max(q_star, 1.0):
        raise ValueError(f"no critical point of {activation} has q* = {q_star}: it would need σ_b² = {sb2} < 0")
    return sw2, max(sb2, 0.0)


def _derivative_sq_max(derivative: Callable[[torch.Tensor], torch.Tensor], q_star: float) -> float:
    """max φ'(h)² over the quadrature's reach |h| ≤ TAIL_SIGMAS·√q*, on a grid refined around its
    maximum (and at 0⁻, 0⁺, where φ' may jump)."""
    reach = TAIL_SIGMAS * math.sqrt(q_star)
    grid = torch.linspace(-reach, reach, DERIVATIVE_GRID_POINTS, dtype=torch.float64)
    values = derivative(grid).square()
    best = int(values.argmax())
    step = 2 * reach / (DERIVATIVE_GRID_POINTS - 1)
    fine = torch.linspace(float(grid[best]) - step, float(grid[best]) + step, DERIVATIVE_GRID_POINTS, dtype=torch.float64)
    sides = torch.tensor([-1e-100, 1e-100], dtype=torch.float64)
    return max(float(values.max()), float(derivative(fine).square().max()), float(derivative(sides).square().max()))


def _derivative_sq_psi(activation: Activation, q_star: float) -> tuple[Callable[[float], float], float]:
    """ψ_{D²}(x) = E[d·x/(1 − d·x)], d = φ'(√q*·z)², as a function, and max d (ψ's pole is 1/max d)."""
    slopes = activation.piecewise_linear_slopes()
    if slopes is not None:
        atoms = [a * a for a in slopes]  # two atoms of mass 1/2
        return (lambda x: sum(d * x / (1 - d * x) for d in atoms) / 2), max(atoms)
    derivative = first_derivative(activation)
    if q_star == 0:
        d0 = float(derivative(torch.zeros(1, dtype=torch.float64)).square())
        return (lambda x: d0 * x / (1 - d0 * x)), d0
    d_max = _derivative_sq_max(derivative, q_star)

    def psi(x: float) -> float:
        def integrand(h: torch.Tensor) -> torch.Tensor:
            d = derivative(h).square()
            return d * x / (1 - d * x)

        return gaussian_expectation(integrand, q_star)

    return psi, d_max


def _log_edge_curve(
    activation: Activation, sw2: float, q_star: float, depth: int, weights: WeightEnsemble
) -> tuple[Callable[[float], float], float]:
    """log w as a function of x ∈ (0, x_max), where z = ψ_{D²}(x), and x_max.

    .. math::
        w = (1 + z)/(z·S_{JJᵀ}(z)),   S_{D²}(z) = (1 + z)·x/z,
        log S_layer = log x − log z − log σ_w² (Gaussian; S_W = 1/(σ_w²(1+z)) cancels the 1 + z)
                      or that plus log(1 + z) (orthogonal).

    Parametrizing by x rather than z needs no inversion of ψ. A point where rounding makes z
    non-positive or infinite is +inf, so the search steps over it.
    """
    _check_ensemble(weights)
    psi, d_max = _derivative_sq_psi(activation, q_star)
    if d_max <= 0:
        raise ValueError("φ' = 0 wherever the Gaussian puts mass: the Jacobian is zero and has no edge")

    def log_w(x: float) -> float:
        z = psi(x)
        if not 0 < z < math.inf:
            return math.inf
        log_s_layer = math.log(x) - math.log(z) - math.log(sw2)
        if weights == "orthogonal":
            log_s_layer += math.log1p(z)
        return math.log1p(z) - math.log(z) - depth * log_s_layer

    return log_w, (1 - EDGE_POLE_MARGIN) / d_max


def _golden_minimum(f: Callable[[float], float], lo: float, hi: float, iterations: int = 80) -> float:
    """min f on [lo, hi] for unimodal f, by golden-section search (80 steps shrink the bracket ~1e-17)."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = f(b)
    return min(fa, fb)


def theory_max(activation: Activation, sw2: float, q_star: float, depth: int, weights: WeightEnsemble) -> float:
    """The largest λ of the limiting density: λ_max = inf_{z>0} (1 + z)/(z·S_{JJᵀ}(z)).

    w(z) is minimised over x = ψ_{D²}⁻¹(z) ∈ (0, 1/max φ'²) (see :func:`_log_edge_curve`): a
    log-spaced grid that reaches toward both ends brackets the minimum, golden-section search
    refines it (w is unimodal: decreasing down to the edge, then on its unphysical branch). Where
    w still decreases at the pole (every λ equal: linear orthogonal nets) the value there is the
    infimum, to a relative ~1e-9. Returns inf where λ_max overflows float64.
    """
    _check_q_star(q_star)
    _check_depth(depth)
    log_w, x_max = _log_edge_curve(activation, sw2, q_star, depth, weights)
    # Fractions of x_max: log-spaced from 1e-12 up, then 1 − 10^(−s) toward the pole.
    half = EDGE_GRID_POINTS // 2
    fractions = [10 ** (-12 + 12 * i / half) for i in range(half)] + [1 - 10 ** (-1 - 8 * i / (half - 1)) for i in range(half)]
    fractions = sorted(set(fractions))
    values = [log_w(f * x_max) for f in fractions]
    best = min(range(len(values)), key=values.__getitem__)
    if best == len(values) - 1:
        log_edge = values[best]
    else:
        lo = fractions[max(best - 1, 0)] * x_max
        log_edge = min(values[best], _golden_minimum(log_w, lo, fractions[best + 1] * x_max))
    try:
        return math.exp(log_edge)
    except OverflowError:
        return math.inf


def _check_depth(depth: int) -> None:
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")


def fuss_catalan_moment(k: int, depth: int, sw2: float = 1.0) -> float:
    """E[λᵏ] for a linear net of ``depth`` Gaussian layers of variance σ_w²/N, as N → ∞.

    .. math:: m_k = σ_w^{2Lk}·C((L + 1)k, k)/(Lk + 1)

    (the Fuss–Catalan numbers; L = 1 gives the Catalan numbers of Marchenko–Pastur). So
    m₁ = σ_w^{2L} and m₂/m₁² = L + 1.
    """
    _check_depth(depth)
    if k < 0:
        raise ValueError(f"k must be ≥ 0, got {k}")
    return math.comb((depth + 1) * k, k) / (depth * k + 1) * sw2 ** (depth * k)


def fuss_catalan_edge(depth: int, sw2: float = 1.0) -> float:
    """The largest λ of the Fuss–Catalan law: σ_w^{2L}·(L + 1)^{L+1}/L^L."""
    _check_depth(depth)
    return math.exp((depth + 1) * math.log(depth + 1) - depth * math.log(depth) + depth * math.log(sw2))


def _fuss_catalan_log_point(angle: float, depth: int) -> float:
    """log λ(φ) = (L+1)·log sin((L+1)φ) − log sin φ − L·log sin(Lφ), for σ_w = 1."""
    s = depth
    return (s + 1) * math.log(math.sin((s + 1) * angle)) - math.log(math.sin(angle)) - s * math.log(math.sin(s * angle))


def fuss_catalan_density(lam: float, depth: int, sw2: float = 1.0) -> float:
    """The density of λ for a linear Gaussian net of ``depth`` layers (N → ∞), at λ.

    Parametrized by an angle φ ∈ (0, π/(L+1)) (Haagerup & Möller 2012; Neuschel 2014), at σ_w = 1:

    .. math::
        λ(φ) = sin^{L+1}((L+1)φ) / (sin φ · sin^L(Lφ)),
        ρ(λ(φ)) = sin²φ · sin^{L−1}(Lφ) / (π · sin^L((L+1)φ))

    λ(φ) falls from the edge (L + 1)^{L+1}/L^L at φ → 0 to 0 at φ → π/(L + 1); the density is
    found by bisection in φ. Other σ_w² scale λ by σ_w^{2L}: ρ_σ(λ) = ρ₁(λ/σ_w^{2L})/σ_w^{2L}.
    Returns 0 outside (0, edge]; ρ ~ λ^{−L/(L+1)} as λ → 0.
    """
    _check_depth(depth)
    scale = sw2**depth
    unit_lam = lam / scale
    if not 0 < unit_lam < fuss_catalan_edge(depth):
        return 0.0
    target = math.log(unit_lam)
    lo, hi = 0.0, math.pi / (depth + 1)  # λ(lo) = edge > λ > 0 = λ(hi)
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if _fuss_catalan_log_point(mid, depth) > target:
            lo = mid
        else:
            hi = mid
    angle = (lo + hi) / 2
    s = depth
    log_density = 2 * math.log(math.sin(angle)) + (s - 1) * math.log(math.sin(s * angle)) - s * math.log(math.sin((s + 1) * angle))
    return math.exp(log_density) / math.pi / scale
