"""The layer-to-layer maps of mean-field theory: the length map q ↦ L(q), the correlation map
c ↦ c′ of two inputs at a common variance q*, and χ₁, the correlation map's slope at c = 1.
"""

from __future__ import annotations

import math

from initbench.nets.activations import Activation
from initbench.theory.quadrature import bivariate_gaussian_expectation, check_correlation, gaussian_expectation, gaussian_moments


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
    c = check_correlation(c)
    slopes = activation.piecewise_linear_slopes()
    if slopes is not None:
        a, b = slopes
        cross = q_star * ((a * a + b * b) * _arccos_kernel(c) - 2 * a * b * _arccos_kernel(-c))
    else:
        cross = bivariate_gaussian_expectation(activation, activation, q_star, c)
    return (sw2 * cross + sb2) / q_star
