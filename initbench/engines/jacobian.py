"""The input–output Jacobian J = ∂(output)/∂(input) of many seeds at once, and the spectrum of JJᵀ.

Every run (seed) is one function ``fn(params, x)`` of its own parameters and one input vector;
``torch.func.vmap`` maps it over the runs' stacked parameters. Two ways to the spectrum:

- **exact**: J itself, ``vmap(jacrev(fn))`` (one reverse pass per output coordinate, all runs and
  coordinates batched), then ``torch.linalg.svdvals``. λ = s² are the eigenvalues of JJᵀ.
- **estimated**, for a J too large to form: the moments tr((JJᵀ)ᵏ)/n_out for k = 1, 2 by
  Hutchinson's estimator with Rademacher probes v (E[vvᵀ] = I): tr(JJᵀ) = E‖Jᵀv‖² and
  tr((JJᵀ)²) = E‖JJᵀv‖², from one VJP and one JVP per probe, with the standard error of the probe
  mean; the largest λ by Lanczos on v ↦ J(Jᵀv), with the residual bound |β_m·s_{m,i}|.

For the plain MLP (:func:`mlp_jacobian_spectrum`) the layout is the stacked engine's
(:mod:`~initbench.engines.stacked`): per layer, weights ``[runs, out, in]`` and biases
``[runs, out]``, drawn by :func:`~initbench.engines.stacked.draw_stacked` so that a seed is the
same network there and here. The MLP's output is x^L = φ(h^L), every layer with φ, so
J = D_L·W_L ⋯ D_1·W_1 as in :mod:`initbench.theory.spectrum`. For any ``nn.Module`` taking one
input vector (:func:`module_jacobian_spectrum`), ``functional_call`` runs one copy on each run's
parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from initbench.core.runtime import derive_seed
from initbench.engines.base import Run
from initbench.engines.stacked import draw_stacked
from initbench.nets.activations import Activation

Method = Literal["exact", "estimated"]
#: ``fn(params, x)``: one run's output vector for its parameters (any pytree) and input vector x.
RunFunction = Callable[[Any, torch.Tensor], torch.Tensor]

#: ``method="auto"`` forms J (exact) up to this many elements over all runs (runs·n_out·n_in;
#: 2²⁶ is 256 MiB of float32), and estimates beyond.
EXACT_ELEMENT_LIMIT = 2**26
#: Rademacher probes of the Hutchinson estimates: the standard error falls like 1/√probes.
DEFAULT_PROBES = 64
#: Lanczos steps for the largest eigenvalues: the top one converges geometrically, and the
#: residual bound says how far.
DEFAULT_LANCZOS_STEPS = 40


@dataclass(frozen=True)
class JacobianSpectrum:
    """The spectrum of every run's JJᵀ, and how it was obtained.

    ``moments[r, k−1]`` = tr((JJᵀ)ᵏ)/n_out for k = 1, 2 (the mean of λ and of λ², over the n_out
    eigenvalues of JJᵀ, zeros included), with ``moment_errors`` its standard error (0 when exact).
    ``top_eigenvalues[r]`` are the largest λ, descending, with ``top_eigenvalue_errors`` (Lanczos'
    residual bound; 0 when exact). ``singular_values [runs, min(n_out, n_in)]``, descending, only
    when exact.
    """

    method: Method
    output_dim: int
    moments: torch.Tensor
    moment_errors: torch.Tensor
    top_eigenvalues: torch.Tensor
    top_eigenvalue_errors: torch.Tensor
    singular_values: torch.Tensor | None

    @property
    def nvar(self) -> torch.Tensor:
        """Each run's Var λ / (E λ)² = m₂/m₁² − 1, ``[runs]``: free of the run's overall scale."""
        return self.moments[:, 1] / self.moments[:, 0].square() - 1


def stacked_jacobians(fn: RunFunction, params: Any, inputs: torch.Tensor) -> torch.Tensor:
    """Every run's J = ∂fn(params_r, x_r)/∂x_r, ``[runs, n_out, n_in]`` (``vmap(jacrev)``)."""
    return torch.func.vmap(torch.func.jacrev(fn, argnums=1))(params, inputs)


def jacobian_spectrum(
    fn: RunFunction,
    params: Any,
    inputs: torch.Tensor,
    method: Method | Literal["auto"] = "auto",
    top: int = 1,
    probes: int = DEFAULT_PROBES,
    lanczos_steps: int = DEFAULT_LANCZOS_STEPS,
    seed: int = 0,
) -> JacobianSpectrum:
    """The spectrum of JJᵀ for every run of ``fn`` at its input ``inputs[r]``.

    Args:
        fn: one run's function; ``params`` holds every run's parameters stacked on dim 0.
        inputs: ``[runs, n_in]``, one input per run (see :func:`seeded_inputs`).
        method: ``exact``, ``estimated``, or ``auto``: exact while runs·n_out·n_in ≤ EXACT_ELEMENT_LIMIT.
        top: how many of the largest λ to return.
        probes, lanczos_steps: the estimated method's effort.
        seed: the estimated method's probes and Lanczos start are drawn from this seed.
    """
    output_dim = torch.func.vmap(fn)(params, inputs).shape[-1]
    if method == "auto":
        method = "exact" if inputs.shape[0] * output_dim * inputs.shape[-1] <= EXACT_ELEMENT_LIMIT else "estimated"
    if method == "exact":
        return exact_spectrum(stacked_jacobians(fn, params, inputs), top)
    if method != "estimated":
        raise ValueError(f"method must be exact, estimated or auto, got {method!r}")
    generator = torch.Generator().manual_seed(seed)
    moments, errors = hutchinson_moments(fn, params, inputs, output_dim, probes, generator)
    values, bounds = lanczos_top_eigenvalues(fn, params, inputs, output_dim, top, lanczos_steps, generator)
    return JacobianSpectrum("estimated", output_dim, moments, errors, values, bounds, None)


def exact_spectrum(jacobians: torch.Tensor, top: int = 1) -> JacobianSpectrum:
    """The spectrum from formed Jacobians ``[runs, n_out, n_in]``: singular values and their moments (float64)."""
    singular_values = torch.linalg.svdvals(jacobians)
    lam = singular_values.double().square()
    output_dim = jacobians.shape[-2]
    moments = torch.stack([lam.sum(-1), lam.square().sum(-1)], dim=-1) / output_dim
    top_values = lam[:, :top]
    return JacobianSpectrum(
        "exact", output_dim, moments, torch.zeros_like(moments), top_values, torch.zeros_like(top_values), singular_values
    )


def _jjt_products(fn: RunFunction, params: Any, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For one run and vectors v ``[m, n_out]``: (Jᵀv ``[m, n_in]``, JJᵀv ``[m, n_out]``), by one VJP and one JVP each."""

    def at(x_: torch.Tensor) -> torch.Tensor:
        return fn(params, x_)

    _, pull_back = torch.func.vjp(at, x)
    (pulled,) = torch.func.vmap(pull_back)(v)
    pushed = torch.func.vmap(lambda tangent: torch.func.jvp(at, (x,), (tangent,))[1])(pulled)
    return pulled, pushed


def _stacked_products(fn: RunFunction, params: Any, inputs: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_jjt_products` for every run: v ``[runs, m, n_out]``."""
    return torch.func.vmap(lambda p, x, vectors: _jjt_products(fn, p, x, vectors))(params, inputs, v)


def hutchinson_moments(
    fn: RunFunction, params: Any, inputs: torch.Tensor, output_dim: int, probes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """tr(JJᵀ)/n_out and tr((JJᵀ)²)/n_out per run, ``[runs, 2]``, with their standard errors.

    .. math:: tr(A) = E_v[vᵀAv],  v ∈ {±1}^{n_out}:  vᵀJJᵀv = ‖Jᵀv‖²,  vᵀ(JJᵀ)²v = ‖JJᵀv‖²

    The error is the probes' sample standard deviation over √probes (float64 throughout).
    """
    if probes < 2:
        raise ValueError(f"the standard error needs at least 2 probes, got {probes}")
    runs = inputs.shape[0]
    signs = torch.randint(0, 2, (runs, probes, output_dim), generator=generator).mul_(2).sub_(1)
    pulled, pushed = _stacked_products(fn, params, inputs, signs.to(device=inputs.device, dtype=inputs.dtype))
    samples = torch.stack([pulled.double().square().sum(-1), pushed.double().square().sum(-1)], dim=-1) / output_dim
    return samples.mean(dim=1), samples.std(dim=1) / probes**0.5


def lanczos_top_eigenvalues(
    fn: RunFunction, params: Any, inputs: torch.Tensor, output_dim: int, top: int, steps: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``top`` largest eigenvalues of every run's JJᵀ by Lanczos, ``[runs, top]``, and their error bounds.

    m = min(steps, n_out) steps with full reorthogonalization (twice, for float32). Where the
    Krylov space closes (β ≈ 0: JJᵀ has few distinct eigenvalues), the next vector is a fresh
    random one orthogonal to the basis and T gets β = 0 there, so T stays a valid projection.
    The Ritz values θ_i of the tridiagonal T bound the eigenvalues from below, and each lies
    within |β_m·s_{m,i}| of an eigenvalue of JJᵀ (s_i the i-th eigenvector of T).
    """
    runs, steps = inputs.shape[0], min(steps, output_dim)
    if not 1 <= top <= steps:
        raise ValueError(f"top must lie in [1, {steps}] (Lanczos steps), got {top}")
    basis = torch.zeros(runs, steps + 1, output_dim, dtype=torch.float64)
    alphas = torch.zeros(runs, steps, dtype=torch.float64)
    betas = torch.zeros(runs, steps, dtype=torch.float64)
    basis[:, 0] = _normalized(torch.randn(runs, output_dim, generator=generator, dtype=torch.float64))
    for step in range(steps):
        vector = basis[:, step].to(device=inputs.device, dtype=inputs.dtype)
        product = _stacked_products(fn, params, inputs, vector.unsqueeze(1))[1][:, 0].double().cpu()
        alphas[:, step] = (product * basis[:, step]).sum(-1)
        residual = _orthogonalized(product, basis[:, : step + 1])
        betas[:, step] = residual.norm(dim=-1)
        closed = betas[:, step] <= 1e-10 * alphas[:, : step + 1].abs().amax(-1).clamp_min(1e-300)
        if bool(closed.any()):
            fresh = torch.randn(runs, output_dim, generator=generator, dtype=torch.float64)
            residual = torch.where(closed[:, None], _orthogonalized(fresh, basis[:, : step + 1]), residual)
            betas[:, step] = torch.where(closed, 0.0, betas[:, step])
        basis[:, step + 1] = _normalized(residual)
    tridiagonal = torch.diag_embed(alphas) + torch.diag_embed(betas[:, :-1], 1) + torch.diag_embed(betas[:, :-1], -1)
    ritz_values, ritz_vectors = torch.linalg.eigh(tridiagonal)
    bounds = (betas[:, -1:] * ritz_vectors[:, -1, :]).abs()
    return ritz_values.flip(-1)[:, :top], bounds.flip(-1)[:, :top]


def _normalized(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True)


def _orthogonalized(vectors: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``vectors [runs, n]`` minus their projection on ``basis [runs, k, n]`` (orthonormal rows), twice
    (one Gram–Schmidt pass leaves ~ε·κ of the basis behind)."""
    for _ in range(2):
        vectors = vectors - torch.einsum("rkn,rk->rn", basis, torch.einsum("rkn,rn->rk", basis, vectors))
    return vectors


def mlp_function(activation: Activation) -> RunFunction:
    """One run of the plain MLP: params = (weights, biases), per layer ``[out, in]`` and ``[out]``
    (biases empty: none; vmap cannot map over None); xˡ = φ(Wˡxˡ⁻¹ + bˡ), returning x^L."""

    def forward(params: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        weights, biases = params
        for layer, weight in enumerate(weights):
            x = torch.addmv(biases[layer], weight, x) if biases else weight @ x
            x = activation(x)
        return x

    return forward


def mlp_jacobian_spectrum(
    weights: Sequence[torch.Tensor] | torch.Tensor,
    biases: Sequence[torch.Tensor] | None,
    activation: Activation,
    inputs: torch.Tensor,
    **options: Any,
) -> JacobianSpectrum:
    """:func:`jacobian_spectrum` of the plain MLP with stacked ``weights`` (per layer ``[runs, out, in]``,
    or one ``[runs, layers, N, N]`` tensor W[r, l]) and ``biases`` (per layer ``[runs, out]``, or None)."""
    if isinstance(weights, torch.Tensor):
        weights = weights.unbind(1)
    params = (tuple(weights), () if biases is None else tuple(biases))
    return jacobian_spectrum(mlp_function(activation), params, inputs, **options)


def draw_mlp(
    runs: list[Run], input_width: int, widths: list[int], use_bias: bool, device: torch.device, dtype: torch.dtype
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """The runs' MLP weights (and biases) drawn as :class:`~initbench.engines.stacked.StackedForward`
    draws them: per layer, from ``torch.Generator().manual_seed(run.seed)`` through ``draw_stacked``."""
    generators = [torch.Generator().manual_seed(run.seed) for run in runs]
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor] = []
    fan_in = input_width
    for layer, fan_out in enumerate(widths, start=1):
        weight = torch.empty(len(runs), fan_out, fan_in, dtype=dtype)
        bias = torch.empty(len(runs), fan_out, dtype=dtype) if use_bias else None
        draw_stacked(runs, generators, weight, bias, layer, len(widths))
        weights.append(weight.to(device))
        if bias is not None:
            biases.append(bias.to(device))
        fan_in = fan_out
    return weights, biases if use_bias else None


def seeded_inputs(seeds: Sequence[int], width: int, q0: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """One input per seed, ``[runs, width]``: N(0, 1) from the seed's ``input`` stream, scaled so that
    its second moment per coordinate is exactly q0 (mean xᵢ² = q0; PSG17 start the net at q*).

    q0 = q* puts x⁰ at q*; h¹ then has variance σ_w²·q* + σ_b², and q* itself from the second layer
    on when the fixed point is approached fast. (q* − σ_b²)/σ_w² would put h¹ at q* exactly.
    """
    if not q0 >= 0:
        raise ValueError(f"q0 must be ≥ 0, got {q0}")
    rows = [torch.randn(width, generator=torch.Generator().manual_seed(derive_seed(seed, "input")), dtype=torch.float64) for seed in seeds]
    x = torch.stack(rows)
    x = x * (q0 / x.square().mean(dim=-1, keepdim=True)).sqrt()
    return x.to(device=device, dtype=dtype)


def module_jacobian_spectrum(modules: Sequence[nn.Module], inputs: torch.Tensor, **options: Any) -> JacobianSpectrum:
    """:func:`jacobian_spectrum` of any ``nn.Module`` that maps one input vector to one output vector,
    one built and initialized module per run, ``inputs [runs, n_in]``.

    Their parameters and buffers are stacked (``torch.func.stack_module_state``) and one copy is
    called on each run's slice with ``torch.func.functional_call``.
    """
    params, buffers = torch.func.stack_module_state(list(modules))
    params = {name: value.detach() for name, value in params.items()}  # J is taken in x alone
    base = copy.deepcopy(modules[0])

    def forward(state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(base, state, (x,))

    return jacobian_spectrum(forward, (params, buffers), inputs, **options)
