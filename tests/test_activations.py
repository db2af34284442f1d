"""Every activation against a hand-written formula, and its gain against PyTorch's table."""

from __future__ import annotations

import math

import pytest
import torch

from initbench.core.errors import InitbenchError
from initbench.core.registry import build_from_spec
from initbench.nets.activations import ACTIVATIONS

H = torch.linspace(-4, 4, 81, dtype=torch.float64)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


FORMULAS = {
    "linear": lambda h: h,
    "tanh": lambda h: (torch.exp(h) - torch.exp(-h)) / (torch.exp(h) + torch.exp(-h)),
    "sigmoid": lambda h: 1 / (1 + torch.exp(-h)),
    "relu": lambda h: torch.where(h > 0, h, 0.0),
    "leaky_relu": lambda h: torch.where(h > 0, h, 0.01 * h),
    "elu": lambda h: torch.where(h > 0, h, torch.exp(h) - 1),
    "selu": lambda h: SELU_SCALE * torch.where(h > 0, h, SELU_ALPHA * (torch.exp(h) - 1)),
    "gelu": lambda h: h * normal_cdf(h),
    "silu": lambda h: h / (1 + torch.exp(-h)),
    "softsign": lambda h: h / (1 + h.abs()),
}

GAINS = {"linear": 1.0, "tanh": 5 / 3, "sigmoid": 1.0, "relu": math.sqrt(2), "leaky_relu": math.sqrt(2 / (1 + 0.01**2)), "selu": 0.75}


def test_every_activation_has_a_reference_formula() -> None:
    assert set(FORMULAS) == set(ACTIVATIONS.names())


@pytest.mark.parametrize("name", FORMULAS)
def test_activation_matches_its_formula(name: str) -> None:
    activation = ACTIVATIONS.get(name)()
    assert torch.allclose(activation(H), FORMULAS[name](H), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", FORMULAS)
@pytest.mark.parametrize("options", [{}, {"negative_slope": 0.2, "alpha": 0.5}])
def test_apply_into_equals_the_function(name: str, options: dict[str, float]) -> None:
    """What the forward engine writes into its buffers is bit-for-bit φ(h), and h is left alone."""
    activation = ACTIVATIONS.get(name)(**{key: value for key, value in options.items() if key in ACTIVATIONS.get(name).model_fields})
    h = torch.cat([torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 5, torch.tensor([0.0, -0.0, 1e30, -1e30, math.inf, -math.inf, math.nan])])
    original, out = h.clone(), torch.empty_like(h)
    result = activation.apply_into(h, out)
    assert result.data_ptr() == out.data_ptr()
    torch.testing.assert_close(result, activation(h), rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(h, original, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", FORMULAS)
def test_times_derivative_equals_autograd(name: str) -> None:
    """The closed forms of φ' (and the autograd default) against autograd through φ, at 0 too."""
    activation = ACTIVATIONS.get(name)()
    h = torch.cat([H, torch.tensor([0.0, -0.0, 30.0, -30.0], dtype=torch.float64)]).requires_grad_(True)
    upstream = torch.randn(h.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (expected,) = torch.autograd.grad(activation(h), h, grad_outputs=upstream)
    with torch.no_grad():
        product = activation.times_derivative(h.detach(), activation(h.detach()), upstream)
    torch.testing.assert_close(product, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", FORMULAS)
def test_torch_gain(name: str) -> None:
    assert ACTIVATIONS.get(name)().torch_gain() == (pytest.approx(GAINS[name]) if name in GAINS else None)


def test_activation_options() -> None:
    leaky = build_from_spec(ACTIVATIONS, "leaky_relu:negative_slope=0.2")
    assert torch.allclose(leaky(H), torch.where(H > 0, H, 0.2 * H))
    assert leaky.torch_gain() == pytest.approx(math.sqrt(2 / 1.04))
    elu = build_from_spec(ACTIVATIONS, "elu:alpha=0.5")
    assert elu(torch.tensor([-100.0])).item() == pytest.approx(-0.5)


def test_saturation_masks() -> None:
    y = torch.tensor([-0.999, -0.5, 0.0, 0.98, 0.995])
    assert ACTIVATIONS.get("tanh")().saturated(y).tolist() == [True, False, False, False, True]
    s = torch.tensor([0.005, 0.011, 0.5, 0.989, 0.9999])
    assert ACTIVATIONS.get("sigmoid")().saturated(s).tolist() == [True, False, False, False, True]
    assert ACTIVATIONS.get("relu")().saturated(y) is None


def test_unknown_activation_suggests_the_nearest() -> None:
    with pytest.raises(InitbenchError, match="Did you mean 'relu'") as error:
        build_from_spec(ACTIVATIONS, "rleu")
    assert "tanh" in str(error.value)
