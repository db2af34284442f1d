"""Every registered scheme against its formula, recomputed here from fan-in and fan-out.

The expected variances below are written independently of ``initbench.schemes.structured`` (from the
formulas in SCIENCE.md), so a wrong formula in the code cannot also be the test's reference.
"""

from __future__ import annotations

import math

import pytest
import torch

from initbench.core.errors import InitbenchError
from initbench.core.registry import build_from_spec
from initbench.nets.activations import ACTIVATIONS
from initbench.nets.architectures import ParamContext
from initbench.schemes.base import SCHEMES

FAN_IN, FAN_OUT = 300, 500
RELU = ACTIVATIONS.get("relu")()
TANH = ACTIVATIONS.get("tanh")()


def truncated_standard_variance(a: float, b: float) -> float:
    """Variance of N(0,1) truncated to [a, b], computed by numerical integration (not the formula)."""
    steps = 200_000
    width = (b - a) / steps
    xs = [a + (i + 0.5) * width for i in range(steps)]
    density = [math.exp(-x * x / 2) for x in xs]
    mass = sum(density)
    mean = sum(x * d for x, d in zip(xs, density)) / mass
    return sum((x - mean) ** 2 * d for x, d in zip(xs, density)) / mass


# spec -> (expected mean, expected variance) for a [FAN_OUT, FAN_IN] weight in a ReLU network.
EXPECTED = {
    "zeros": (0.0, 0.0),
    "ones": (1.0, 0.0),
    "constant:value=0.3": (0.3, 0.0),
    "random": (0.0, 1.0),
    "small_random": (0.0, 1e-4),
    "normal:mean=0.5,std=2": (0.5, 4.0),
    "uniform": (0.5, 1 / 12),
    "uniform:a=-1,b=3": (1.0, 16 / 12),
    "truncated_normal:std=0.1": (0.0, 0.01 * truncated_standard_variance(-2, 2)),
    "xavier_uniform": (0.0, 2 / (FAN_IN + FAN_OUT)),
    "xavier_uniform:gain=auto": (0.0, 2 * 2 / (FAN_IN + FAN_OUT)),
    "xavier_normal:gain=3": (0.0, 9 * 2 / (FAN_IN + FAN_OUT)),
    "kaiming_uniform": (0.0, 2 / FAN_IN),
    "kaiming_normal": (0.0, 2 / FAN_IN),
    "kaiming_normal:mode=fan_out": (0.0, 2 / FAN_OUT),
    "kaiming_normal:nonlinearity=leaky_relu,a=0.2": (0.0, 2 / (1 + 0.04) / FAN_IN),
    "kaiming_uniform:nonlinearity=tanh": (0.0, (25 / 9) / FAN_IN),
    "lecun_uniform": (0.0, 1 / FAN_IN),
    "lecun_normal": (0.0, 1 / FAN_IN),
    "variance_scaling": (0.0, 1 / FAN_IN),
    "variance_scaling:scale=2,mode=fan_avg,distribution=uniform": (0.0, 2 / ((FAN_IN + FAN_OUT) / 2)),
    "orthogonal:gain=2": (0.0, 4 / max(FAN_IN, FAN_OUT)),
    "delta_orthogonal:gain=2": (0.0, 4 / max(FAN_IN, FAN_OUT)),  # a 2-D weight: plain orthogonal
    "default": (0.0, 1 / (3 * FAN_IN)),
}


def draw(spec: str, shape: tuple[int, ...] = (FAN_OUT, FAN_IN), seed: int = 0, activation=RELU) -> torch.Tensor:
    scheme = build_from_spec(SCHEMES, spec).resolve(activation)
    tensor = torch.empty(shape, dtype=torch.float64)
    context = ParamContext("layer", "Linear", "weight" if len(shape) > 1 else "bias", shape, FAN_IN, FAN_OUT, 1, 1)
    scheme.sample_(tensor, context, torch.Generator().manual_seed(seed))
    return tensor


def test_every_registered_scheme_has_an_expected_value() -> None:
    tested = {build_from_spec(SCHEMES, spec).registry_name for spec in EXPECTED}
    no_variance = {"identity", "dirac", "zero", "gpt2", "plugin", "constructor"}  # not i.i.d. across the net; constructor draws nothing
    untested = set(SCHEMES.names()) - tested - no_variance
    untested -= {name for name in untested if SCHEMES.get(name).needs_model}  # whole-model schemes: tests/test_model_schemes.py
    untested -= {name for name in untested if SCHEMES.get(name).needs_data}  # set by a batch: tests/test_lsuv.py
    assert not untested, f"add these schemes to EXPECTED: {untested}"
    assert all(SCHEMES.get(name)().weight_variance(FAN_IN, FAN_OUT) is None for name in no_variance - {"plugin"})  # plugin: needs a function


@pytest.mark.parametrize("spec", EXPECTED)
def test_declared_moments_match_the_formula(spec: str) -> None:
    scheme = build_from_spec(SCHEMES, spec).resolve(RELU)
    mean, variance = EXPECTED[spec]
    assert scheme.weight_mean() == pytest.approx(mean, abs=1e-12)
    assert scheme.weight_variance(FAN_IN, FAN_OUT) == pytest.approx(variance, rel=1e-6, abs=1e-15)


@pytest.mark.parametrize("spec", EXPECTED)
def test_sampled_moments_match_the_formula(spec: str) -> None:
    samples = draw(spec)
    mean, variance = EXPECTED[spec]
    count = samples.numel()
    # 6 standard errors: the chance of a false failure over this whole table is negligible.
    assert samples.mean().item() == pytest.approx(mean, abs=6 * math.sqrt(variance / count) + 1e-12)
    if variance == 0:
        assert torch.all(samples == samples.flatten()[0])
    else:
        # The sample variance's relative standard error is about sqrt(2/n) (for near-Gaussian tails).
        assert samples.var().item() == pytest.approx(variance, rel=6 * math.sqrt(3 / count))


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def ks_statistic(samples: torch.Tensor, cdf) -> float:
    """Kolmogorov–Smirnov distance between the empirical distribution of samples and a CDF."""
    ordered, _ = samples.flatten().sort()
    n = ordered.numel()
    theoretical = cdf(ordered)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - theoretical
    lower = theoretical - torch.arange(0, n, dtype=torch.float64) / n
    return max(upper.max().item(), lower.max().item())


KS_CRITICAL_0_001 = 1.95  # times 1/sqrt(n): the KS test's critical value at α = 0.001


@pytest.mark.parametrize(
    ("spec", "cdf"),
    [
        ("xavier_normal", lambda x: normal_cdf(x / math.sqrt(2 / (FAN_IN + FAN_OUT)))),
        ("kaiming_normal", lambda x: normal_cdf(x / math.sqrt(2 / FAN_IN))),
        ("xavier_uniform", lambda x: ((x / math.sqrt(6 / (FAN_IN + FAN_OUT)) + 1) / 2).clamp(0, 1)),
        ("default", lambda x: ((x * math.sqrt(FAN_IN) + 1) / 2).clamp(0, 1)),
        ("uniform:a=-1,b=3", lambda x: ((x + 1) / 4).clamp(0, 1)),
        (
            "truncated_normal:std=0.1",
            lambda x: ((normal_cdf(x / 0.1) - normal_cdf(torch.tensor(-2.0))) / (1 - 2 * normal_cdf(torch.tensor(-2.0)))).clamp(0, 1),
        ),
    ],
)
def test_distribution_shape_passes_a_ks_test(spec: str, cdf) -> None:
    samples = draw(spec, shape=(200, 100))
    assert ks_statistic(samples, cdf) < KS_CRITICAL_0_001 / math.sqrt(samples.numel())


def test_ks_test_rejects_the_wrong_distribution() -> None:
    """The KS check above has teeth: uniform samples fail against the normal CDF of equal variance."""
    samples = draw("xavier_uniform", shape=(200, 100))
    std = math.sqrt(2 / (FAN_IN + FAN_OUT))
    assert ks_statistic(samples, lambda x: normal_cdf(x / std)) > KS_CRITICAL_0_001 / math.sqrt(samples.numel())


@pytest.mark.parametrize(
    ("spec", "reference"),
    [
        ("xavier_uniform", lambda w, g: torch.nn.init.xavier_uniform_(w, generator=g)),
        ("xavier_normal:gain=2", lambda w, g: torch.nn.init.xavier_normal_(w, gain=2, generator=g)),
        ("kaiming_normal", lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
        ("kaiming_uniform:mode=fan_out", lambda w, g: torch.nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu", generator=g)),
        ("default", lambda w, g: torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)),
        ("orthogonal:gain=1.5", lambda w, g: torch.nn.init.orthogonal_(w, gain=1.5, generator=g)),
        ("truncated_normal:std=0.02", lambda w, g: torch.nn.init.trunc_normal_(w, std=0.02, a=-0.04, b=0.04, generator=g)),
    ],
)
def test_same_draws_as_pytorch(spec: str, reference) -> None:
    """Where PyTorch has the scheme, the same generator seed gives the same weights."""
    expected = torch.empty(FAN_OUT, FAN_IN, dtype=torch.float64)
    reference(expected, torch.Generator().manual_seed(7))
    assert torch.allclose(draw(spec, seed=7), expected, rtol=1e-12, atol=0)


def test_orthogonal_rows_are_orthonormal() -> None:
    weight = draw("orthogonal", shape=(FAN_IN, FAN_OUT))  # wide: rows orthonormal
    assert torch.allclose(weight @ weight.T, torch.eye(FAN_IN, dtype=torch.float64), atol=1e-10)


def test_identity_is_the_identity() -> None:
    assert torch.equal(draw("identity", shape=(5, 5)), torch.eye(5, dtype=torch.float64))
    assert build_from_spec(SCHEMES, "identity").weight_variance(5, 5) is None


def test_gain_auto_is_pytorchs_gain_for_the_activation() -> None:
    assert build_from_spec(SCHEMES, "xavier_uniform:gain=auto").resolve(TANH).gain == pytest.approx(5 / 3)
    assert build_from_spec(SCHEMES, "he").resolve(TANH).gain == pytest.approx(5 / 3)
    leaky = ACTIVATIONS.get("leaky_relu")(negative_slope=0.2)
    assert build_from_spec(SCHEMES, "he").resolve(leaky).gain == pytest.approx(math.sqrt(2 / 1.04))


def test_gain_auto_without_a_torch_gain_preserves_variance() -> None:
    """gelu has no PyTorch gain: auto falls back to σ_w with σ_w²·E[gelu(z)²] = 1, z ~ N(0, 1)."""
    gelu = ACTIVATIONS.get("gelu")()
    gain = build_from_spec(SCHEMES, "xavier_normal:gain=auto").resolve(gelu).gain
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert gain**2 * gelu(z).pow(2).mean().item() == pytest.approx(1.0, rel=5e-3)


def test_bias_fill_uses_the_layer_fans() -> None:
    bias = draw("default", shape=(FAN_OUT,))
    assert bias.abs().max().item() <= 1 / math.sqrt(FAN_IN)
    assert bias.var().item() == pytest.approx(1 / (3 * FAN_IN), rel=0.2)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("normal:sdt=1", "Did you mean 'std'"),
        ("xaviar", "Did you mean 'xavier'"),
        ("normal:std=-1", "greater than or equal to 0"),
        ("uniform:a=1,b=0", "a ≤ b"),
        ("kaiming_normal:mode=fan_avg", "fan_in"),
        ("random:std=2", "std"),
        ("normal:std", "key=value"),
    ],
)
def test_bad_scheme_specs_are_user_errors(spec: str, message: str) -> None:
    with pytest.raises(InitbenchError, match=message):
        build_from_spec(SCHEMES, spec).resolve(RELU)


def test_unsupported_nonlinearity_names_the_way_out() -> None:
    with pytest.raises(InitbenchError, match="Unsupported nonlinearity gelu"):
        build_from_spec(SCHEMES, "kaiming_normal:nonlinearity=gelu").resolve(RELU)
