"""The Jacobian spectrum's theory (initbench.theory.spectrum) against references it does not use:
the Catalan numbers, the Marchenko–Pastur law, scipy's quadrature of the Fuss–Catalan density,
closed-form S-transforms minimised by scipy, and scipy's integrals of φ'."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize_scalar
from scipy.special import comb

from initbench.nets.activations import ACTIVATIONS
from initbench.theory import chi1, fixed_point
from initbench.theory.spectrum import (
    critical_point,
    derivative_moments,
    fuss_catalan_density,
    fuss_catalan_edge,
    fuss_catalan_moment,
    theory_max,
    theory_mean,
    theory_nvar,
    theory_variance,
)

LINEAR = ACTIVATIONS.get("linear")()
TANH = ACTIVATIONS.get("tanh")()
RELU = ACTIVATIONS.get("relu")()


def test_fuss_catalan_moments_are_the_catalan_numbers_at_one_layer_and_scale_with_the_gain() -> None:
    assert [fuss_catalan_moment(k, 1) for k in range(6)] == [1, 1, 2, 5, 14, 42]
    for depth in (1, 2, 5, 16):
        assert fuss_catalan_moment(1, depth) == 1
        assert fuss_catalan_moment(2, depth) == depth + 1
        for k in range(5):
            reference = comb((depth + 1) * k, k, exact=True) / (depth * k + 1)
            assert fuss_catalan_moment(k, depth, sw2=1.5) == pytest.approx(reference * 1.5 ** (depth * k), rel=1e-14)


@pytest.mark.parametrize(("depth", "sw2"), [(1, 1.0), (2, 1.0), (4, 1.0), (3, 1.5)])
def test_fuss_catalan_density_integrates_to_its_moments(depth: int, sw2: float) -> None:
    """∫ λᵏ ρ(λ) dλ = m_k for k = 0..3. λ = edge·t^{L+1} takes out ρ's λ^{−L/(L+1)} singularity."""
    edge = fuss_catalan_edge(depth, sw2)
    for k in range(4):

        def integrand(t: float, k: int = k) -> float:
            lam = edge * t ** (depth + 1)
            return lam**k * fuss_catalan_density(lam, depth, sw2) * edge * (depth + 1) * t**depth

        value, _ = quad(integrand, 0.0, 1.0, limit=400, epsabs=0, epsrel=1e-10)
        assert value == pytest.approx(fuss_catalan_moment(k, depth, sw2), rel=1e-6)


def test_fuss_catalan_density_at_one_layer_is_marchenko_pastur() -> None:
    for lam in (0.01, 0.5, 1.0, 2.7, 3.99):
        assert fuss_catalan_density(lam, 1) == pytest.approx(math.sqrt(4 - lam) / (2 * math.pi * math.sqrt(lam)), rel=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 8, 32])
def test_the_edge_of_a_linear_gaussian_net_is_the_fuss_catalan_edge(depth: int) -> None:
    edge = fuss_catalan_edge(depth, 1.2)
    assert edge == pytest.approx(1.2**depth * (depth + 1) ** (depth + 1) / depth**depth, rel=1e-12)
    assert theory_max(LINEAR, 1.2, 1.0, depth, "gaussian") == pytest.approx(edge, rel=1e-9)
    assert fuss_catalan_density(edge * (1 + 1e-9), depth, 1.2) == 0
    assert fuss_catalan_density(edge * (1 - 1e-3), depth, 1.2) > 0


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_linear_nets_mean_and_variance(depth: int) -> None:
    """Gaussian: the Fuss–Catalan m₁ and m₂ − m₁²; orthogonal: every λ is σ_w^{2L}, no variance, edge σ_w^{2L}."""
    sw2 = 1.3
    m1, m2 = fuss_catalan_moment(1, depth, sw2), fuss_catalan_moment(2, depth, sw2)
    assert theory_mean(LINEAR, sw2, 0.7, depth) == pytest.approx(m1, rel=1e-12)
    assert theory_variance(LINEAR, sw2, 0.7, depth, "gaussian") == pytest.approx(m2 - m1 * m1, rel=1e-12)
    assert theory_nvar(LINEAR, 0.7, depth, "orthogonal") == 0
    assert theory_max(LINEAR, sw2, 0.7, depth, "orthogonal") == pytest.approx(sw2**depth, rel=1e-7)


def test_one_relu_layer_against_marchenko_pastur_at_ratio_one_half() -> None:
    """JJᵀ = D W Wᵀ D: half the λ are 0, half those of an (N/2)×N Gaussian block's Gram matrix, so
    MP at ratio c = 1/2 and scale σ_w²: edge σ_w²(1 + √c)², mean σ_w²/2, E λ² = σ_w⁴(1 + c)/2.
    Orthogonal W: λ ∈ {0, σ_w²} equally often."""
    sw2 = 2.0
    c = 0.5
    assert theory_max(RELU, sw2, 1.0, 1, "gaussian") == pytest.approx(sw2 * (1 + math.sqrt(c)) ** 2, rel=1e-9)
    assert theory_mean(RELU, sw2, 1.0, 1) == pytest.approx(sw2 / 2)
    assert theory_variance(RELU, sw2, 1.0, 1, "gaussian") == pytest.approx(sw2**2 * (1 + c) / 2 - (sw2 / 2) ** 2, rel=1e-12)
    assert theory_max(RELU, sw2, 1.0, 1, "orthogonal") == pytest.approx(sw2, rel=1e-7)
    assert theory_variance(RELU, sw2, 1.0, 1, "orthogonal") == pytest.approx(sw2**2 / 4, rel=1e-12)


@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("depth", [2, 8, 30])
def test_relu_edge_against_its_closed_form_s_transform(weights: str, depth: int) -> None:
    """relu's D² has atoms {0, 1}: ψ = x/(2(1 − x)), so S_{D²}(z) = 2(1 + z)/(1 + 2z). With
    S_W = 1/(σ_w²(1 + z)) (Gaussian) or 1/σ_w² (orthogonal), λ_max = min_z (1 + z)/(z·S_layer(z)^L),
    minimised here by scipy."""
    sw2 = 2.0

    def log_w(log_z: float) -> float:
        z = math.exp(log_z)
        s_layer = 2 * (1 + z) / (1 + 2 * z) / sw2 / ((1 + z) if weights == "gaussian" else 1)
        return math.log1p(z) - log_z - depth * math.log(s_layer)

    best = minimize_scalar(log_w, bounds=(-30, 30), method="bounded", options={"xatol": 1e-12})
    assert theory_max(RELU, sw2, 1.0, depth, weights) == pytest.approx(math.exp(best.fun), rel=1e-7)


def test_relu_variance_grows_linearly_in_depth_for_both_ensembles() -> None:
    for depth in (4, 16, 64):
        assert theory_nvar(RELU, 1.0, depth, "orthogonal") == pytest.approx(depth)
        assert theory_nvar(RELU, 1.0, depth, "gaussian") == pytest.approx(2 * depth)


def _scipy_expectation(f, q: float) -> float:
    value, _ = quad(
        lambda z: f(math.sqrt(q) * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -40, 40, limit=400, epsabs=0, epsrel=1e-13
    )
    return value


@pytest.mark.parametrize("q_star", [1 / 64, 0.25, 1.0, 4.0])
def test_tanh_derivative_moments_and_nvar_against_scipy(q_star: float) -> None:
    mu1 = _scipy_expectation(lambda h: np.cosh(h) ** -4, q_star)
    mu2 = _scipy_expectation(lambda h: np.cosh(h) ** -8, q_star)
    assert derivative_moments(TANH, q_star) == pytest.approx((mu1, mu2), rel=1e-11)
    for depth in (1, 8, 32):
        assert theory_nvar(TANH, q_star, depth, "orthogonal") == pytest.approx(depth * (mu2 / mu1**2 - 1), rel=1e-9)
        assert theory_nvar(TANH, q_star, depth, "gaussian") == pytest.approx(depth * (mu2 / mu1**2), rel=1e-11)


@pytest.mark.parametrize("q_star", [1 / 64, 0.25, 1.0])
def test_critical_point_has_the_asked_fixed_point_and_unit_chi(q_star: float) -> None:
    sw2, sb2 = critical_point(TANH, q_star)
    assert fixed_point(TANH, sw2, sb2) == pytest.approx(q_star, rel=1e-9)
    assert chi1(TANH, sw2, q_star) == pytest.approx(1.0, abs=1e-12)
    assert theory_mean(TANH, sw2, q_star, 50) == pytest.approx(1.0, rel=1e-10)


def test_orthogonal_tanh_approaches_isometry_as_q_star_shrinks() -> None:
    """PSG17's point: orthogonal tanh's normalised variance → 0 with q*, and its edge → 1; Gaussian's stays ≥ L."""
    depth = 32
    values = [theory_nvar(TANH, q, depth, "orthogonal") for q in (1.0, 0.25, 1 / 64, 1e-4)]
    assert values == sorted(values, reverse=True) and values[-1] < 1e-3
    edges = [theory_max(TANH, critical_point(TANH, q)[0], q, depth, "orthogonal") for q in (1.0, 1 / 64, 1e-4)]
    assert edges == sorted(edges, reverse=True) and edges[-1] == pytest.approx(1.0, abs=0.01)
    assert theory_nvar(TANH, 1e-4, depth, "gaussian") >= depth


def test_refusals() -> None:
    with pytest.raises(ValueError, match="finite fixed point"):
        theory_nvar(TANH, math.inf, 4, "gaussian")
    with pytest.raises(ValueError, match="weights must be"):
        theory_nvar(TANH, 1.0, 4, "uniform")
    with pytest.raises(ValueError, match="depth"):
        theory_max(TANH, 1.0, 1.0, 0, "gaussian")
    assert critical_point(RELU, 1.0) == (2.0, 0.0)  # He's line, where every q is a fixed point
