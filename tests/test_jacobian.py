"""The stacked Jacobian engine (initbench.engines.jacobian) against torch.autograd.functional.jacobian,
torch.linalg.svdvals and torch.lobpcg, against exact spectra, and its measured moments against the
free-probability theory (initbench.theory.spectrum) within seed noise."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initbench.core.registry import build_from_spec
from initbench.engines import jacobian
from initbench.engines.base import Run
from initbench.engines.jacobian import (
    draw_mlp,
    exact_spectrum,
    mlp_function,
    mlp_jacobian_spectrum,
    module_jacobian_spectrum,
    seeded_inputs,
    stacked_jacobians,
)
from initbench.engines.stacked import StackedForward
from initbench.nets.activations import ACTIVATIONS
from initbench.schemes.base import SCHEMES
from initbench.theory.spectrum import critical_point, theory_max, theory_mean, theory_nvar

#: torch.func.jvp's first call scripts torch's own jvp decompositions, and torch 2.13 warns about its own torch.jit.script.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

CPU = torch.device("cpu")
F64 = torch.float64


def make_runs(activation_name: str, scheme: str, seeds: range, bias: str | None = None) -> list[Run]:
    activation = ACTIVATIONS.get(activation_name)()
    return [
        Run(
            scheme,
            seed,
            build_from_spec(SCHEMES, scheme).resolve(activation),
            None if bias is None else build_from_spec(SCHEMES, bias).resolve(activation),
        )
        for seed in seeds
    ]


def mlp(activation_name: str, scheme: str, seeds: range, width: int, depth: int, q0: float, bias: str | None = None):
    """(weights, biases, activation, inputs) of a square MLP drawn as the stacked engine draws it."""
    runs = make_runs(activation_name, scheme, seeds, bias)
    weights, biases = draw_mlp(runs, width, [width] * depth, bias is not None, CPU, F64)
    return weights, biases, ACTIVATIONS.get(activation_name)(), seeded_inputs(list(seeds), width, q0, CPU, F64)


def test_stacked_jacobians_equal_autograd_per_seed() -> None:
    """A non-square tanh MLP with biases: J and its singular values, seed by seed, to float64 precision."""
    seeds = range(3)
    runs = make_runs("tanh", "xavier_normal:gain=auto", seeds, bias="normal:std=0.3")
    weights, biases = draw_mlp(runs, 7, [9, 5, 6], True, CPU, F64)
    tanh = ACTIVATIONS.get("tanh")()
    inputs = seeded_inputs(list(seeds), 7, 0.8, CPU, F64)
    forward = mlp_function(tanh)
    stacked = stacked_jacobians(forward, (tuple(weights), tuple(biases)), inputs)
    spectrum = mlp_jacobian_spectrum(weights, biases, tanh, inputs, method="exact", top=2)
    for index in seeds:
        params = (tuple(w[index] for w in weights), tuple(b[index] for b in biases))
        reference = torch.autograd.functional.jacobian(lambda x, params=params: forward(params, x), inputs[index])
        torch.testing.assert_close(stacked[index], reference, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(spectrum.singular_values[index], torch.linalg.svdvals(reference), rtol=1e-12, atol=1e-14)
    assert spectrum.method == "exact" and spectrum.output_dim == 6
    torch.testing.assert_close(spectrum.moments[:, 0], spectrum.singular_values.square().sum(-1) / 6)


def test_draw_mlp_is_the_stacked_engines_network() -> None:
    """The same seeds give the same network as StackedForward: equal outputs on equal inputs."""
    seeds = range(2)
    runs = make_runs("tanh", "kaiming_normal", seeds, bias="normal:std=0.1")
    weights, biases = draw_mlp(runs, 5, [8, 8, 4], True, CPU, F64)
    inputs = seeded_inputs(list(seeds), 5, 1.0, CPU, F64)
    engine = StackedForward(runs, ACTIVATIONS.get("tanh")(), CPU, F64)
    last = [output.post.clone() for output in engine.layers(inputs.unsqueeze(1), [8, 8, 4], use_bias=True)][-1]
    outputs = torch.func.vmap(mlp_function(ACTIVATIONS.get("tanh")()))((tuple(weights), tuple(biases)), inputs)
    torch.testing.assert_close(outputs, last[:, 0], rtol=1e-12, atol=1e-14)


def _seeded_modules(seeds: range) -> list[nn.Module]:
    modules = []
    for seed in seeds:
        torch.manual_seed(seed)
        modules.append(nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4)).double())
    return modules


def test_module_spectrum_equals_autograd_per_seed() -> None:
    modules = _seeded_modules(range(3))
    inputs = torch.randn(3, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    spectrum = module_jacobian_spectrum(modules, inputs, method="exact", top=4)
    for index, module in enumerate(modules):
        reference = torch.linalg.svdvals(torch.autograd.functional.jacobian(module, inputs[index]))
        torch.testing.assert_close(spectrum.singular_values[index], reference, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(spectrum.top_eigenvalues[index], reference.square(), rtol=1e-12, atol=1e-14)
    assert spectrum.output_dim == 4


def test_linear_orthogonal_net_has_every_singular_value_gain_to_the_depth() -> None:
    gain, depth = 1.1, 5
    weights, biases, linear, inputs = mlp("linear", f"orthogonal:gain={gain}", range(3), 24, depth, 1.0)
    spectrum = mlp_jacobian_spectrum(weights, biases, linear, inputs, method="exact")
    torch.testing.assert_close(spectrum.singular_values, torch.full((3, 24), gain**depth, dtype=F64), rtol=1e-12, atol=0)
    torch.testing.assert_close(spectrum.nvar, torch.zeros(3, dtype=F64), rtol=0, atol=1e-12)


def _check_within_noise(measured: torch.Tensor, expected: float, relative_slack: float) -> None:
    """The seeds' mean within 4 standard errors of ``expected``, plus ``relative_slack``·expected for
    the finite-width bias."""
    mean, sem = float(measured.mean()), float(measured.std()) / math.sqrt(len(measured))
    assert abs(mean - expected) <= 4 * sem + relative_slack * abs(expected), (mean, sem, expected)


@pytest.mark.parametrize("depth", [2, 4])
def test_linear_gaussian_net_has_the_fuss_catalan_moments(depth: int) -> None:
    """m₁ = 1 and m₂/m₁² = L + 1 (per-seed nvar = L), with the finite-width bias nvar ≈ L·(1 + 0.55·L/N)."""
    width = 256
    weights, biases, linear, inputs = mlp("linear", f"normal:std={1 / math.sqrt(width)}", range(6), width, depth, 1.0)
    spectrum = mlp_jacobian_spectrum(weights, biases, linear, inputs, method="exact")
    _check_within_noise(spectrum.moments[:, 0], 1.0, 0.0)
    _check_within_noise(spectrum.nvar, depth * (1 + 0.55 * depth / width), 0.01)


def _critical_tanh(scheme: str, depth: int, width: int = 256, q_star: float = 1 / 64):
    """A tanh net at the critical point with fixed point q*, its input put so that h¹ is at q*."""
    tanh = ACTIVATIONS.get("tanh")()
    sw2, sb2 = critical_point(tanh, q_star)
    spec = f"orthogonal:gain={math.sqrt(sw2)}" if scheme == "orthogonal" else f"normal:std={math.sqrt(sw2 / width)}"
    weights, biases, _, inputs = mlp("tanh", spec, range(4), width, depth, (q_star - sb2) / sw2, bias=f"normal:std={math.sqrt(sb2)}")
    return mlp_jacobian_spectrum(weights, biases, tanh, inputs, method="exact"), tanh, sw2, q_star


def test_critical_tanh_orthogonal_stays_isometric_while_gaussian_grows_with_depth() -> None:
    """PSG17's figure at width 256, q* = 1/64: theory_mean = 1 for both; nvar = L·(μ₂/μ₁² − 1 − s₁),
    ∝ L for Gaussian weights and two orders of magnitude smaller for orthogonal ones."""
    nvar = {}
    for weights in ("orthogonal", "gaussian"):
        for depth in (8, 32):
            spectrum, tanh, sw2, q_star = _critical_tanh(weights, depth)
            assert theory_mean(tanh, sw2, q_star, depth) == pytest.approx(1.0)
            _check_within_noise(spectrum.moments[:, 0], 1.0, 0.02)
            _check_within_noise(spectrum.nvar, theory_nvar(tanh, q_star, depth, weights), 0.08)
            nvar[weights, depth] = float(spectrum.nvar.mean())
            if weights == "orthogonal":  # a sharp edge: the measured max sits on it
                _check_within_noise(spectrum.top_eigenvalues[:, 0], theory_max(tanh, sw2, q_star, depth, weights), 0.03)
    assert 3 < nvar["gaussian", 32] / nvar["gaussian", 8] < 5
    assert nvar["orthogonal", 32] < 0.01 * nvar["gaussian", 32]


@pytest.mark.parametrize(("scheme", "weights"), [("orthogonal:gain=1.4142135623730951", "orthogonal"), ("kaiming_normal", "gaussian")])
def test_relu_at_he_grows_with_depth_for_both_ensembles(scheme: str, weights: str) -> None:
    width = 256
    for depth in (8, 16):
        tensors, biases, relu, inputs = mlp("relu", scheme, range(4), width, depth, 1.0)
        spectrum = mlp_jacobian_spectrum(tensors, biases, relu, inputs, method="exact")
        _check_within_noise(spectrum.moments[:, 0], theory_mean(relu, 2.0, 1.0, depth), 0.0)
        _check_within_noise(spectrum.nvar, theory_nvar(relu, 1.0, depth, weights), 0.05)


def test_hutchinson_moments_agree_with_exact_ones_within_their_error() -> None:
    weights, biases, tanh, inputs = mlp("tanh", "xavier_normal:gain=auto", range(3), 48, 4, 0.5, bias="normal:std=0.1")
    exact = mlp_jacobian_spectrum(weights, biases, tanh, inputs, method="exact")
    estimated = mlp_jacobian_spectrum(weights, biases, tanh, inputs, method="estimated", probes=200, seed=3)
    assert estimated.method == "estimated" and estimated.singular_values is None
    assert bool((estimated.moment_errors > 0).all())
    assert bool(((estimated.moments - exact.moments).abs() <= 4 * estimated.moment_errors).all())
    assert bool((estimated.moment_errors < 0.1 * exact.moments).all())


def test_hutchinson_normalises_by_the_output_dimension() -> None:
    """A module with 6 inputs and 4 outputs: tr(JJᵀ)/4, as exact_spectrum's sum of s² over 4."""
    modules = _seeded_modules(range(2))
    inputs = torch.randn(2, 6, generator=torch.Generator().manual_seed(1), dtype=F64)
    exact = module_jacobian_spectrum(modules, inputs, method="exact")
    estimated = module_jacobian_spectrum(modules, inputs, method="estimated", probes=400, top=4)
    assert bool(((estimated.moments - exact.moments).abs() <= 4 * estimated.moment_errors).all())
    torch.testing.assert_close(estimated.top_eigenvalues, exact.singular_values.square(), rtol=1e-9, atol=1e-12)


def test_lanczos_top_eigenvalues_against_exact_and_lobpcg() -> None:
    weights, biases, tanh, inputs = mlp("tanh", "kaiming_normal", range(2), 64, 3, 1.0)
    exact = mlp_jacobian_spectrum(weights, biases, tanh, inputs, method="exact", top=2)
    estimated = mlp_jacobian_spectrum(weights, biases, tanh, inputs, method="estimated", top=2, lanczos_steps=40)
    assert bool(
        ((estimated.top_eigenvalues - exact.top_eigenvalues).abs() <= estimated.top_eigenvalue_errors + 1e-9 * exact.top_eigenvalues).all()
    )
    torch.testing.assert_close(estimated.top_eigenvalues, exact.top_eigenvalues, rtol=1e-6, atol=0)
    forward = mlp_function(tanh)
    for index, matrix in enumerate(stacked_jacobians(forward, (tuple(weights), ()), inputs)):
        gram = matrix @ matrix.T
        start = torch.randn(64, 2, generator=torch.Generator().manual_seed(index), dtype=F64)
        values, _ = torch.lobpcg(gram, X=start, largest=True, tol=1e-10)
        torch.testing.assert_close(estimated.top_eigenvalues[index], values, rtol=1e-6, atol=0)


def test_auto_estimates_beyond_the_element_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    weights, biases, tanh, inputs = mlp("tanh", "kaiming_normal", range(2), 16, 2, 1.0)
    assert mlp_jacobian_spectrum(weights, biases, tanh, inputs).method == "exact"
    monkeypatch.setattr(jacobian, "EXACT_ELEMENT_LIMIT", 2 * 16 * 16 - 1)
    assert mlp_jacobian_spectrum(weights, biases, tanh, inputs).method == "estimated"


def test_a_closed_krylov_space_still_gives_the_top_eigenvalue() -> None:
    """Linear orthogonal: JJᵀ = σ_w^{2L}·I, so Lanczos closes after one step and restarts."""
    weights, biases, linear, inputs = mlp("linear", "orthogonal:gain=1.2", range(2), 16, 3, 1.0)
    estimated = mlp_jacobian_spectrum(weights, biases, linear, inputs, method="estimated", top=3, lanczos_steps=8)
    torch.testing.assert_close(estimated.top_eigenvalues, torch.full((2, 3), 1.2**6, dtype=F64), rtol=1e-10, atol=0)


def test_exact_spectrum_of_given_matrices() -> None:
    matrices = torch.diag_embed(torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, 2.0]], dtype=F64))
    spectrum = exact_spectrum(matrices, top=1)
    torch.testing.assert_close(spectrum.moments, torch.tensor([[10 / 3, 82 / 3], [4.0, 16.0]], dtype=F64))
    torch.testing.assert_close(spectrum.nvar, torch.tensor([82 / 3 / (10 / 3) ** 2 - 1, 0.0], dtype=F64))
