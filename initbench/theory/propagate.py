"""Mean-field predictions layer by layer: the pre-activation variances, post-activation moments and
χ₁ of a plain net (forward), the gradient variances (backward), and a residual stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from initbench.nets.activations import Activation
from initbench.theory.quadrature import gaussian_moments


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
