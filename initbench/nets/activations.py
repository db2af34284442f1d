"""Activation functions φ, registered by name, each knowing its PyTorch gain.

Every activation is a torch function (the engine applies it to pre-activations ``h``), so the
theory module can take expectations of the very same φ, and of φ' by autograd: a newly registered
activation gets mean-field predictions with no extra code.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from initbench.core.errors import InitbenchError
from initbench.core.registry import Component, Registry


class Activation(Component):
    """Base class: φ(h), elementwise."""

    #: The nonlinearity name ``torch.nn.init.calculate_gain`` knows, if it knows this one.
    torch_gain_name: ClassVar[str | None] = None
    #: Fraction-saturated rule: ``|y| > 0.99`` for tanh; sigmoid overrides it; None means "never".
    saturation_bound: ClassVar[float | None] = None

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """φ(h) written into ``out`` (h's shape, not h itself) and returned.

        The forward engine keeps φ(h) in buffers it reuses across layers; a new tensor per layer
        would cost its page faults every layer. Activations override this with torch's ``out=``
        or in-place form of φ; the others compute φ(h) and copy it.
        """
        return out.copy_(self(h))

    def times_derivative(self, h: torch.Tensor, y: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
        """``upstream ⊙ φ'(h)``, where ``y = φ(h)``: one step of backpropagation through φ.

        By autograd through φ itself, so every activation has it; the common ones override it
        with their closed form (a few elementwise ops instead of an autograd graph), and a test
        holds each override to autograd.
        """
        with torch.enable_grad():
            leaf = h.detach().requires_grad_(True)
            (product,) = torch.autograd.grad(self(leaf), leaf, grad_outputs=upstream)
        return product

    def torch_gain(self) -> float | None:
        """``torch.nn.init.calculate_gain`` for this activation, or None where torch has none."""
        if self.torch_gain_name is None:
            return None
        return float(torch.nn.init.calculate_gain(self.torch_gain_name, self._gain_param()))

    def _gain_param(self) -> float | None:
        return None

    def piecewise_linear_slopes(self) -> tuple[float, float] | None:
        """(slope for h > 0, slope for h < 0) when φ is piecewise linear through 0, else None.

        Gaussian moments of such φ have closed forms (see :mod:`initbench.theory.quadrature`).
        """
        return None

    def saturated(self, y: torch.Tensor) -> torch.Tensor | None:
        """Boolean mask of saturated outputs, or None when the activation does not saturate."""
        if self.saturation_bound is None:
            return None
        return y.abs() > self.saturation_bound


ACTIVATIONS: Registry[type[Activation]] = Registry("activation")


def check_representable(activation: Activation, dtype: torch.dtype, what: str) -> None:
    """Refuse an activation (``what``, as the message names it) whose options overflow ``dtype`` (``elu:alpha=1e39`` in float32): φ
    must be finite on [−3, 3] there, and φ² in float64, or the nets or the theory (E[φ(z)²])
    would compute with infinities."""
    try:
        values = activation(torch.linspace(-3.0, 3.0, 7, dtype=dtype))
        finite = bool(torch.isfinite(values.double().square()).all())
    except RuntimeError:  # torch refuses options it cannot convert to the dtype
        finite = False
    if not finite:
        name = str(dtype).removeprefix("torch.")
        raise InitbenchError(f"{what} overflows {name} on [−3, 3].", hint="Give it smaller options.")


@ACTIVATIONS.register("linear")
class Linear(Activation):
    """No activation: φ(h) = h. Deep linear nets show the pure effect of the weight scale."""

    formula = "φ(h) = h"
    torch_gain_name = "linear"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(h)

    def times_derivative(self, h: torch.Tensor, y: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
        # φ'(h) = 1
        return upstream

    def piecewise_linear_slopes(self) -> tuple[float, float] | None:
        return (1.0, 1.0)


@ACTIVATIONS.register("tanh")
class Tanh(Activation):
    """Hyperbolic tangent, the classic saturating activation (saturated: |y| > 0.99)."""

    formula = "φ(h) = tanh(h)"
    torch_gain_name = "tanh"
    saturation_bound = 0.99

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(h)

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.tanh(h, out=out)

    def times_derivative(self, h: torch.Tensor, y: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
        # φ'(h) = 1 − tanh²(h)
        return upstream * (1 - y * y)


@ACTIVATIONS.register("sigmoid")
class Sigmoid(Activation):
    """Logistic sigmoid (saturated: y < 0.01 or y > 0.99). Its outputs are never zero-mean."""

    formula = "φ(h) = 1 / (1 + e^(−h))"
    torch_gain_name = "sigmoid"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h)

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h, out=out)

    def times_derivative(self, h: torch.Tensor, y: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
        # φ'(h) = σ(h)·(1 − σ(h))
        return upstream * (y * (1 - y))

    def saturated(self, y: torch.Tensor) -> torch.Tensor | None:
        # |y − 0.5| > 0.49 is the same as y < 0.01 or y > 0.99, in one pass.
        return (y - 0.5).abs() > 0.49


@ACTIVATIONS.register("relu")
class ReLU(Activation):
    """Rectified linear unit: half of every layer's units are exactly zero on average."""

    formula = "φ(h) = max(0, h)"
    torch_gain_name = "relu"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h)

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.clamp_min(h, 0.0, out=out)  # what torch.relu computes

    def times_derivative(self, h: torch.Tensor, y: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
        # φ'(h) = sign(φ(h)): 1 for h > 0, else 0 (also at 0, as autograd has it). Two vectorized
        # ops; a comparison mask and masked_fill take 5× as long on the CPU. Unlike autograd, an
        # infinite upstream gives NaN where h ≤ 0, which only a run that has overflowed sees.
        return upstream * y.sign()

    def piecewise_linear_slopes(self) -> tuple[float, float] | None:
        return (1.0, 0.0)


@ACTIVATIONS.register("leaky_relu")
class LeakyReLU(Activation):
    """Leaky ReLU with slope ``negative_slope`` for h < 0 (PyTorch's default 0.01)."""

    formula = "φ(h) = h if h > 0 else α·h   (α = negative_slope)"
    torch_gain_name = "leaky_relu"
    negative_slope: float = Field(default=0.01, ge=0.0)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(h, self.negative_slope)

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu_(out.copy_(h), self.negative_slope)

    def times_derivative(self, h: torch.Tensor, y: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
        # φ'(h) = 1 for h > 0, else α
        return torch.where(h > 0, upstream, upstream * self.negative_slope)

    def _gain_param(self) -> float | None:
        return self.negative_slope

    def piecewise_linear_slopes(self) -> tuple[float, float] | None:
        return (1.0, self.negative_slope)


@ACTIVATIONS.register("elu")
class ELU(Activation):
    """Exponential linear unit (Clevert et al. 2015); PyTorch defines no gain for it."""

    formula = "φ(h) = h if h > 0 else α·(e^h − 1)"
    alpha: float = Field(default=1.0, gt=0.0)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.elu(h, self.alpha)

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return F.elu_(out.copy_(h), self.alpha)


@ACTIVATIONS.register("selu")
class SELU(Activation):
    """Scaled ELU (Klambauer et al. 2017), self-normalizing with LeCun-normal weights."""

    formula = "φ(h) = λ·(h if h > 0 else α·(e^h − 1)),  λ ≈ 1.0507, α ≈ 1.6733"
    torch_gain_name = "selu"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.selu(h)

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return F.selu_(out.copy_(h))


@ACTIVATIONS.register("gelu")
class GELU(Activation):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016), exact erf form."""

    formula = "φ(h) = h·Φ(h),  Φ the standard normal CDF"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(h)


@ACTIVATIONS.register("silu", aliases=("swish",))
class SiLU(Activation):
    """Sigmoid linear unit, also known as swish (Ramachandran et al. 2017)."""

    formula = "φ(h) = h·σ(h)"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.silu(h)

    def apply_into(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return F.silu(out.copy_(h), inplace=True)


@ACTIVATIONS.register("softsign")
class Softsign(Activation):
    """Softsign (studied by Glorot & Bengio 2010): like tanh, with polynomial tails."""

    formula = "φ(h) = h / (1 + |h|)"

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return F.softsign(h)

