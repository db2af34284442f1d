"""The classic per-entry schemes: constants, normal, uniform and truncated normal draws, whose
variance does not depend on the fans.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import Field

from initbench.schemes.base import SCHEMES, InitScheme

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext


@SCHEMES.register("zeros")
class Zeros(InitScheme):
    """All weights 0: every unit computes the same thing, so symmetry is never broken."""

    formula = "W = 0"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        tensor.zero_()

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return 0.0


@SCHEMES.register("constant")
class Constant(InitScheme):
    """All weights equal to ``value``."""

    formula = "W = value"
    value: float = 0.0

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        tensor.fill_(self.value)

    def weight_mean(self) -> float:
        return self.value

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return 0.0


@SCHEMES.register("ones")
class Ones(InitScheme):
    """All weights 1."""

    formula = "W = 1"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        tensor.fill_(1.0)

    def weight_mean(self) -> float:
        return 1.0

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return 0.0


@SCHEMES.register("normal")
class Normal(InitScheme):
    """Gaussian weights with a fixed mean and std, whatever the layer's size."""

    formula = "W ~ N(mean, std²);  Var = std²"
    mean: float = 0.0
    std: float = Field(default=1.0, ge=0.0)

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        tensor.normal_(self.mean, self.std, generator=generator)

    def weight_mean(self) -> float:
        return self.mean

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return self.std**2


@SCHEMES.register("random")
class Random(InitScheme):
    """The blogs' naive "random" init, N(0, 1): explodes in deep linear and ReLU nets."""

    formula = "W ~ N(0, 1);  Var = 1"
    std: ClassVar[float] = 1.0

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        tensor.normal_(0.0, self.std, generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return self.std**2


@SCHEMES.register("small_random")
class SmallRandom(Random):
    """N(0, 0.01²), cs231n's "small random numbers": the signal vanishes in deep nets."""

    formula = "W ~ N(0, 0.01²);  Var = 1e-4"
    std: ClassVar[float] = 0.01


@SCHEMES.register("uniform")
class Uniform(InitScheme):
    """Uniform weights on [a, b) (PyTorch's ``uniform_`` defaults: a = 0, b = 1)."""

    formula = "W ~ U(a, b);  Var = (b − a)²/12,  mean (a + b)/2"
    a: float = 0.0
    b: float = 1.0

    def model_post_init(self, context: object) -> None:
        if self.b < self.a:
            raise ValueError(f"uniform needs a ≤ b, got a={self.a}, b={self.b}")

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        tensor.uniform_(self.a, self.b, generator=generator)

    def weight_mean(self) -> float:
        return (self.a + self.b) / 2

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return (self.b - self.a) ** 2 / 12


@SCHEMES.register("truncated_normal")
class TruncatedNormal(InitScheme):
    """N(mean, std²) redrawn outside [mean + a·std, mean + b·std]; ``a``, ``b`` count in stds.

    The cut shrinks the std: at the default ±2 the entries' true std is 0.8796·std (reported as
    the scheme's variance). Use ``variance_scaling`` for the Keras form that corrects for it.
    """

    formula = "W ~ N(mean, std²) cut to [mean + a·std, mean + b·std];  Var = std²·(1 + (αφ(α) − βφ(β))/Z − ((φ(α) − φ(β))/Z)²)"
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0.0)
    a: float = -2.0
    b: float = 2.0

    def model_post_init(self, context: object) -> None:
        if self.b <= self.a:
            raise ValueError(f"truncated_normal needs a < b, got a={self.a}, b={self.b}")

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        low, high = self.mean + self.a * self.std, self.mean + self.b * self.std
        torch.nn.init.trunc_normal_(tensor, self.mean, self.std, low, high, generator=generator)

    def _standard_moments(self) -> tuple[float, float]:
        """Mean and variance of N(0,1) truncated to [a, b] (the textbook formulas)."""
        pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
        cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
        mass = cdf(self.b) - cdf(self.a)
        shift = (pdf(self.a) - pdf(self.b)) / mass
        variance = 1 + (self.a * pdf(self.a) - self.b * pdf(self.b)) / mass - shift**2
        return shift, variance

    def weight_mean(self) -> float:
        return self.mean + self.std * self._standard_moments()[0]

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return self.std**2 * self._standard_moments()[1]
