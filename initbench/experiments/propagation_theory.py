"""The mean-field predictions a propagation run is measured against: :func:`scheme_theory` gives,
for one scheme's network, the std of every layer's activations and gradients, χ₁, the fixed
point q* and the depth scales (:mod:`initbench.theory`), or the reason there are none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from initbench import theory
from initbench.config.run import Config
from initbench.engines.base import Run
from initbench.nets.activations import Activation


@dataclass(frozen=True)
class SchemeTheory:
    """Mean-field predictions for one scheme's network (see :mod:`initbench.theory.propagate`)."""

    sigma_w2: float
    sigma_b2: float
    prediction: theory.ForwardPrediction
    grad_std: np.ndarray  # predicted std of dLoss/dh per layer
    q_star: float
    chi1: float  # at q*, or at the last layer when q* is unbounded
    chi1_at: str  # "fixed point" or "last layer"
    xi_q: float
    xi_c: float
    phase: str  # ordered, critical or chaotic at q*; unbounded when q* = inf


def hidden_fans(config: Config) -> tuple[int, int] | None:
    """(fan_in, fan_out) of the repeated hidden layer, whose σ_w² the summary reports; None for a module."""
    width = config.model.width
    return {"mlp": (width, width), "resmlp": (width, width), "cnn": (9 * width, 9 * width)}.get(config.model.arch)


def scheme_theory(run: Run, activation: Activation, config: Config, depth: int | None = None) -> SchemeTheory | str:
    """The predictions for ``run``'s network, or the reason there are none.

    Mean-field theory needs zero-mean i.i.d. weights (and biases): σ_w² = fan_in·Var(W_ij) and
    σ_b² = Var(b_i). The loss L = Σ x^L ⊙ r / √batch with r ~ N(0, 1) starts the backward recursion
    at Var(dL/dh^L) = E[φ'(h^L)²] / batch.

    - mlp: the length map qˡ = σ_w²·E[φ(z)²] + σ_b², z ~ N(0, qˡ⁻¹).
    - cnn: the same map with each layer's own σ_w² = C_in·9·Var(W). It holds at the image's centre,
      where every 3×3 window sees real pixels, until the zero padding's loss of variance reaches
      the centre (one pixel a layer).
    - resmlp: the block output's variance grows as v ← v + σ₂²·E[φ(z)²] + σ_b², z ~ N(0, σ₁²·v + σ_b²).
    - normalized nets and user modules: none (normalization makes every layer's scale depend on
      the batch, which this mean field does not model).
    """
    model = config.model
    if model.norm != "none":
        return f"normalized nets ({model.norm}) have no mean-field prediction here"
    fans_hidden = hidden_fans(config)
    if fans_hidden is None:
        return "a user's module has no mean-field prediction"
    depth = config.model.depth if depth is None else depth  # the rows measured: the layers or blocks
    variance = run.scheme.weight_variance(*fans_hidden)
    if variance is None:
        return f"'{run.label}' has no i.i.d. weight variance"
    if run.scheme.weight_mean() != 0:
        return f"'{run.label}' has non-zero-mean weights"
    sigma_b2 = 0.0
    if run.bias is not None:
        bias_variance = run.bias.weight_variance(*fans_hidden)
        if bias_variance is None or run.bias.weight_mean() != 0:
            return "the bias init is not zero-mean i.i.d."
        sigma_b2 = bias_variance
    sigma_w2 = variance * fans_hidden[0]
    if model.arch == "resmlp":
        prediction = theory.propagate_residual(activation, sigma_w2, sigma_w2, sigma_b2, depth)
        q_star = math.inf if sigma_w2 > 0 else 1.0
        grad_std = np.full(depth, math.nan)  # no backward recursion for residual nets here
        chi1 = float(prediction.chi1[-1])
        return SchemeTheory(sigma_w2, sigma_b2, prediction, grad_std, q_star, chi1, "last layer", math.nan, math.nan, theory.fixed_point_phase(q_star, chi1))
    if model.arch == "cnn":
        # Layer 1 sees input.channels; its σ_w² differs when the scheme's fan mode is not fan_in.
        first = 9 * config.input.channels
        sw2 = [variance_first * first if (variance_first := run.scheme.weight_variance(first, fans_hidden[1])) is not None else math.nan] + [sigma_w2] * (depth - 1)
    else:
        sw2 = [sigma_w2] * depth
    input_second_moment = 1.0  # E[(x⁰)²] of the N(0, 1) inputs: q¹ = σ_w² + σ_b²
    prediction = theory.propagate_forward(activation, sw2, sigma_b2, depth, input_second_moment)
    with np.errstate(all="ignore"):
        last_q = float(prediction.q[-1])
        last_grad_var = theory.gaussian_moments(activation, last_q).derivative_sq / config.input.batch_size() if math.isfinite(last_q) else math.nan
        grad_std = np.sqrt(theory.propagate_backward(activation, sw2, prediction.q, last_grad_var))
    q_star = theory.fixed_point(activation, sigma_w2, sigma_b2, input_second_moment)
    if math.isfinite(q_star):
        chi1, chi1_at = theory.chi1(activation, sigma_w2, q_star), "fixed point"
    else:
        chi1, chi1_at = float(prediction.chi1[-1]), "last layer"
    xi_q, xi_c, _ = theory.depth_scales(activation, sigma_w2, sigma_b2, input_second_moment)
    phase = "undefined" if math.isnan(chi1) and math.isfinite(q_star) else theory.fixed_point_phase(q_star, chi1)
    return SchemeTheory(sigma_w2, sigma_b2, prediction, grad_std, q_star, chi1, chi1_at, xi_q, xi_c, phase)
