"""Weight-initialization schemes, registered by name, each documented with the variance it gives.

A scheme fills one parameter in place from a ``torch.Generator``, told where the parameter sits by a
:class:`~initbench.architectures.ParamContext` (module path and type, weight or bias, shape, fans,
layer index and depth, residual branch and position). It reports, from the fans alone, the mean and
variance of its entries: ``Var(W_ij) = σ_w² / fan_in`` is what mean-field theory needs. The fans come
with the context (``fan_in = in``, ``fan_out = out`` for a weight ``[out, in]``; a bias gets its
layer's) rather than being read off the tensor, so the same scheme fills a stacked slice or a bias.
The built-in schemes read only the fans; the context is there for schemes that need the rest.

Options that depend on the network, ``gain: auto`` and Kaiming's ``nonlinearity``, are settled by
:meth:`InitScheme.resolve` once the activation is known; the resolved copy holds plain numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from initbench.activations import Activation
from initbench.errors import InitbenchError
from initbench.registry import Component, Registry

if TYPE_CHECKING:
    from initbench.architectures import ParamContext

FanMode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["normal", "uniform", "truncated_normal"]
#: A gain is a number, or a rule to compute one for the network's activation.
Gain = float | Literal["auto", "preserving", "critical"]

#: Std of N(0, 1) truncated to [−2, 2]; Keras divides by it so the truncated std comes out right.
TRUNCATED_STD_AT_2 = 0.87962566103423978


def fan(fan_in: int, fan_out: int, mode: FanMode) -> float:
    """The fan a variance is divided by: ``fan_in``, ``fan_out`` or their mean (``fan_avg``)."""
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def resolve_gain(gain: Gain, activation: Activation) -> float:
    """A numeric gain for ``activation``.

    ``auto`` is PyTorch's ``calculate_gain`` where torch defines one (so results match what PyTorch
    users expect) and the variance-preserving gain otherwise; ``preserving`` solves
    σ_w²·E[φ(z)²] = 1, z ~ N(0,1); ``critical`` solves χ₁ = 1 (see :mod:`initbench.theory`).
    """
    if isinstance(gain, (int, float)):
        return float(gain)
    if gain == "auto":
        torch_gain = activation.torch_gain()
        if torch_gain is not None:
            return torch_gain
        gain = "preserving"
    from initbench import theory  # deferred: only computed gains need the theory module

    if gain == "preserving":
        value = theory.variance_preserving_gain(activation)
    else:
        value = theory.critical_gain(activation)
    if value is None:
        raise InitbenchError(f"Activation '{activation.spec()}' has no {gain} gain.", hint="Give the gain as a number instead.")
    return value


def sample_with_moments(tensor: torch.Tensor, distribution: Distribution, std: float, generator: torch.Generator | None) -> None:
    """Fill ``tensor`` with zero-mean draws of standard deviation ``std`` from ``distribution``.

    uniform: U(±√3·std). truncated_normal: N(0, (std/0.8796)²) cut at ±2 of its own std, which
    has std ``std`` after the cut (the Keras convention).
    """
    if distribution == "normal":
        tensor.normal_(0.0, std, generator=generator)
    elif distribution == "uniform":
        bound = math.sqrt(3.0) * std
        tensor.uniform_(-bound, bound, generator=generator)
    else:
        wide = std / TRUNCATED_STD_AT_2
        torch.nn.init.trunc_normal_(tensor, 0.0, wide, -2.0 * wide, 2.0 * wide, generator=generator)


class InitScheme(Component):
    """Base class of every scheme."""

    #: False for schemes that need a 2-D weight (orthogonal, identity): they cannot fill a bias.
    fills_bias: ClassVar[bool] = True
    #: Why a scheme with ``fills_bias`` False cannot fill a bias, for the error message.
    no_bias_reason: ClassVar[str] = "needs a 2-D weight"
    #: True for ``constructor``: the model keeps the init its own constructor drew.
    keeps_constructor_init: ClassVar[bool] = False
    #: True for schemes that change or read the whole model (:mod:`initbench.model_schemes`): they
    #: run on the module backend, which calls :meth:`prepare_model` and :meth:`finish_model`.
    needs_model: ClassVar[bool] = False

    def resolve(self, activation: Activation) -> InitScheme:
        """A copy with every network-dependent option replaced by its number."""
        return self

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        """Fill ``tensor`` (the parameter described by ``context``) in place, drawing from ``generator``."""
        raise NotImplementedError

    def prepare_model(self, model: nn.Module, owner: bool) -> None:
        """Add the scheme's structure to a freshly built ``model``, before its parameters are drawn
        (Fixup's scalars). Every model of a stack that holds a run of this scheme gets it, so the
        runs stack; ``owner`` is False for the other runs' models, where the structure is inert."""

    def finish_model(self, model: nn.Module) -> None:
        """Change the run's ``model`` after its parameters are drawn (load a checkpoint's tensors)."""

    def notes(self) -> dict[str, Any]:
        """What the scheme recorded while initializing, for ``summary.json`` (a checkpoint's tensor count)."""
        return {}

    def weight_mean(self) -> float:
        """E[W_ij]."""
        return 0.0

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        """Var(W_ij), or None when the entries are not identically distributed (identity)."""
        raise NotImplementedError


SCHEMES: Registry[type[InitScheme]] = Registry("scheme")


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


class FanScaled(InitScheme):
    """Zero-mean weights with Var(W_ij) = gain² / fan: the family behind Xavier, Kaiming, LeCun."""

    distribution: ClassVar[Distribution]

    def fan_mode(self) -> FanMode:
        """Which fan the variance is divided by."""
        raise NotImplementedError

    def scale(self) -> float:
        """The numerator of the variance: gain²."""
        raise NotImplementedError

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        sample_with_moments(tensor, self.distribution, math.sqrt(self.weight_variance(context.fan_in, context.fan_out) or 0.0), generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return self.scale() / fan(fan_in, fan_out, self.fan_mode())


class Gained(FanScaled):
    """A fan-scaled scheme with a ``gain`` option: a number, ``auto``, ``preserving`` or ``critical``."""

    gain: Gain = 1.0

    def resolve(self, activation: Activation) -> InitScheme:
        return self.model_copy(update={"gain": resolve_gain(self.gain, activation)})

    def scale(self) -> float:
        if not isinstance(self.gain, float):
            raise RuntimeError(f"{self.registry_name}: gain '{self.gain}' used before resolve()")
        return self.gain**2


class Xavier(Gained):
    """Glorot & Bengio (2010): Var = gain²·2/(fan_in + fan_out)."""

    def fan_mode(self) -> FanMode:
        return "fan_avg"


@SCHEMES.register("xavier_uniform", aliases=("xavier", "glorot_uniform"))
class XavierUniform(Xavier):
    """Glorot & Bengio (2010) "normalized" init, uniform. ``gain: auto`` uses the activation's."""

    formula = "W ~ U(±gain·√(6/(fan_in + fan_out)));  Var = gain²·2/(fan_in + fan_out)"
    distribution = "uniform"


@SCHEMES.register("xavier_normal", aliases=("glorot_normal",))
class XavierNormal(Xavier):
    """Glorot & Bengio (2010) init, Gaussian."""

    formula = "W ~ N(0, gain²·2/(fan_in + fan_out))"
    distribution = "normal"


class Kaiming(Gained):
    """He et al. (2015): Var = gain²/fan_mode, the gain taken from ``nonlinearity``.

    ``nonlinearity`` defaults to the network's own activation; naming one (with ``a``, its
    negative slope for leaky_relu) uses ``torch.nn.init.calculate_gain`` exactly as PyTorch does.
    A numeric or rule ``gain`` overrides both.
    """

    mode: Literal["fan_in", "fan_out"] = "fan_in"
    nonlinearity: str | None = None
    a: float = 0.0
    gain: Gain | None = None  # type: ignore[assignment]  # None: take it from nonlinearity

    def fan_mode(self) -> FanMode:
        return self.mode

    def resolve(self, activation: Activation) -> InitScheme:
        if self.gain is not None:
            gain = resolve_gain(self.gain, activation)
        elif self.nonlinearity is None:
            gain = resolve_gain("auto", activation)
        else:
            try:
                gain = float(torch.nn.init.calculate_gain(self.nonlinearity, self.a))  # type: ignore[arg-type]
            except ValueError as error:
                raise InitbenchError(
                    f"{self.registry_name}: {error}.",
                    hint="Leave nonlinearity out to use the network's own activation, or give a gain.",
                ) from None
        return self.model_copy(update={"gain": gain})


@SCHEMES.register("kaiming_uniform", aliases=("he_uniform",))
class KaimingUniform(Kaiming):
    """He et al. (2015) "Delving deep into rectifiers" init, uniform."""

    formula = "W ~ U(±gain·√(3/fan_mode));  Var = gain²/fan_mode"
    distribution = "uniform"


@SCHEMES.register("kaiming_normal", aliases=("he", "he_normal"))
class KaimingNormal(Kaiming):
    """He et al. (2015) "Delving deep into rectifiers" init, Gaussian: keeps ReLU nets' variance."""

    formula = "W ~ N(0, gain²/fan_mode)"
    distribution = "normal"


class Lecun(FanScaled):
    """LeCun et al. (1998): Var = 1/fan_in, no options."""

    def fan_mode(self) -> FanMode:
        return "fan_in"

    def scale(self) -> float:
        return 1.0


@SCHEMES.register("lecun_uniform")
class LecunUniform(Lecun):
    """LeCun et al. (1998) "Efficient BackProp": Kaiming with gain 1 and fan_in, uniform."""

    formula = "W ~ U(±√(3/fan_in));  Var = 1/fan_in"
    distribution = "uniform"


@SCHEMES.register("lecun_normal")
class LecunNormal(Lecun):
    """LeCun et al. (1998): N(0, 1/fan_in), the weights SELU's self-normalization assumes."""

    formula = "W ~ N(0, 1/fan_in)"
    distribution = "normal"


@SCHEMES.register("variance_scaling")
class VarianceScaling(InitScheme):
    """Keras/JAX ``VarianceScaling``: Var = scale/fan, normal, uniform or (corrected) truncated normal."""

    formula = "Var = scale/fan_mode;  truncated_normal: N(0, (std/0.8796)²) cut at ±2 of its std"
    scale: float = Field(default=1.0, gt=0.0)
    mode: FanMode = "fan_in"
    distribution: Distribution = "truncated_normal"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        sample_with_moments(tensor, self.distribution, math.sqrt(self.weight_variance(context.fan_in, context.fan_out) or 0.0), generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return self.scale / fan(fan_in, fan_out, self.mode)


@SCHEMES.register("orthogonal")
class Orthogonal(InitScheme):
    """Saxe et al. (2013): a (semi-)orthogonal matrix times ``gain``, via QR of a Gaussian matrix."""

    formula = "W = gain·Q,  QᵀQ = I;  Var = gain²/max(fan_in, fan_out)"
    fills_bias = False
    gain: Gain = 1.0

    def resolve(self, activation: Activation) -> InitScheme:
        return self.model_copy(update={"gain": resolve_gain(self.gain, activation)})

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        torch.nn.init.orthogonal_(tensor, gain=float(self.gain), generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        # Orthonormal rows (or columns) have unit norm spread over max(fan_in, fan_out) entries.
        return float(self.gain) ** 2 / max(fan_in, fan_out)


@SCHEMES.register("identity", aliases=("eye",))
class Identity(InitScheme):
    """The identity matrix (``torch.nn.init.eye_``): deterministic, so it has no i.i.d. variance."""

    formula = "W = I"
    fills_bias = False

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        if tensor.dim() != 2:
            raise InitbenchError(
                f"Scheme identity fills 2-D weights only; {context.module_path or 'the model'} ({context.module_type}) has a weight of shape {list(context.shape)}.",
                hint="Use another scheme for this model (orthogonal works on conv weights too).",
            )
        torch.nn.init.eye_(tensor)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None


@SCHEMES.register("default", aliases=("pytorch_default",))
class PyTorchDefault(InitScheme):
    """PyTorch's own ``nn.Linear`` init: kaiming_uniform with a = √5, i.e. U(±1/√fan_in).

    For a bias it is the same U(±1/√fan_in) that ``nn.Linear`` gives its bias.
    """

    formula = "W ~ U(±1/√fan_in);  Var = 1/(3·fan_in)"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        bound = 1.0 / math.sqrt(context.fan_in)
        tensor.uniform_(-bound, bound, generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return 1.0 / (3.0 * fan_in)



@SCHEMES.register("constructor", aliases=("own",))
class Constructor(InitScheme):
    """The model's own init, as its constructor draws it (torch's defaults), with torch's RNG seeded by the run's seed.

    For ``model.arch: module`` and the other module-backed nets: nothing is redrawn, so this measures
    what a user's model does out of the box. ``initbench probe`` uses it when no ``--scheme`` is given.
    """

    formula = "W as constructed (torch.manual_seed(seed) before the model is built)"
    keeps_constructor_init = True
    fills_bias = False
    no_bias_reason = "draws nothing: it keeps a whole model's constructor init, weights and biases alike"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        raise RuntimeError("the constructor scheme draws nothing: the model keeps its constructor's init")

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None


# Schemes that change or read the whole model register from their own module; importing it here
# means every user of SCHEMES sees them (it imports this module, which is complete by now).
from initbench import model_schemes  # noqa: F401
