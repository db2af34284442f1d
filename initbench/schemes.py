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

import fnmatch
import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

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
    #: False where a trial draw on a 2×2 stand-in weight (the config's overflow check) proves
    #: nothing and may fail: a user's plugin may expect its own layers, and dirac's groups the real ones.
    trial_draw: ClassVar[bool] = True
    #: True for schemes that change or read the whole model (:mod:`initbench.model_schemes`): they
    #: run on the module backend, which calls :meth:`prepare_model` and :meth:`finish_model`.
    needs_model: ClassVar[bool] = False
    #: True for schemes fitted to a batch after drawing (``lsuv``): they run on the module backend, where the batch is.
    needs_data: ClassVar[bool] = False

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

    def check_inputs(self) -> None:
        """Refuse, with a user error, what the scheme will need at run time and lacks (a checkpoint's
        file). Called before a run's directory is claimed, so a refused run leaves nothing behind."""

    def finish_model(self, model: nn.Module) -> None:
        """Change the run's ``model`` after its parameters are drawn (load a checkpoint's tensors)."""

    def notes(self) -> dict[str, Any]:
        """What the scheme recorded while initializing, for ``summary.json`` (a checkpoint's tensor count)."""
        return {}

    def weight_mean(self) -> float:
        """E[W_ij]."""
        return 0.0

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        """Var(W_ij), or None when the entries are not identically distributed (identity): no prediction."""
        return None


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


class Scaling(NamedTuple):
    """What a variance-scaling scheme draws: Var(W_ij) = ``scale`` / fan(``mode``), from ``distribution``."""

    scale: float
    mode: FanMode
    distribution: Distribution


class VarianceScaled(InitScheme):
    """Zero-mean weights with Var(W_ij) = scale / fan_mode: the family behind Xavier, Kaiming and LeCun.

    Each member says in :meth:`scaling` which ``variance_scaling`` it is; the draws are that
    scheme's, so ``lecun_normal`` and ``variance_scaling:distribution=normal`` give the same weights.
    """

    def scaling(self) -> Scaling:
        """The ``(scale, mode, distribution)`` of the ``variance_scaling`` this scheme is."""
        raise NotImplementedError

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        scale, mode, distribution = self.scaling()
        sample_with_moments(tensor, distribution, math.sqrt(scale / fan(context.fan_in, context.fan_out, mode)), generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        scale, mode, _ = self.scaling()
        return scale / fan(fan_in, fan_out, mode)


class Gained(VarianceScaled):
    """A variance-scaling scheme with scale gain²; ``gain`` is a number, ``auto``, ``preserving`` or ``critical``."""

    gain: Gain = 1.0

    def resolve(self, activation: Activation) -> InitScheme:
        return self.model_copy(update={"gain": resolve_gain(self.gain, activation)})

    def gain_squared(self) -> float:
        if not isinstance(self.gain, float):
            raise RuntimeError(f"{self.registry_name}: gain '{self.gain}' used before resolve()")
        return self.gain**2


@SCHEMES.register("xavier_uniform", aliases=("xavier", "glorot_uniform"))
class XavierUniform(Gained):
    r"""Glorot & Bengio (2010) "normalized" init, uniform. ``gain: auto`` uses the activation's.

    From "Understanding the difficulty of training deep feedforward neural networks" (Glorot, X. &
    Bengio, Y., 2010). The entries are drawn from :math:`\mathcal{U}(-a, a)` with

    .. math::
        a = \text{gain} \times \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}

    Also known as Glorot uniform; ``torch.nn.init.xavier_uniform_``; ``variance_scaling`` with
    scale gain², mode fan_avg, distribution uniform.

    Args:
        gain: a number (default 1), or ``auto`` (PyTorch's ``calculate_gain`` for the network's
            activation), ``preserving`` or ``critical``.

    Examples:
        >>> XavierUniform(gain=2.0).weight_variance(fan_in=300, fan_out=500)  # 2²·2/800
        0.01
    """

    formula = "W ~ U(±gain·√(6/(fan_in + fan_out)));  Var = gain²·2/(fan_in + fan_out)"

    def scaling(self) -> Scaling:
        return Scaling(self.gain_squared(), "fan_avg", "uniform")


@SCHEMES.register("xavier_normal", aliases=("glorot_normal",))
class XavierNormal(Gained):
    r"""Glorot & Bengio (2010) init, Gaussian.

    From "Understanding the difficulty of training deep feedforward neural networks" (Glorot, X. &
    Bengio, Y., 2010). The entries are drawn from :math:`\mathcal{N}(0, \text{std}^2)` with

    .. math::
        \text{std} = \text{gain} \times \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}

    Also known as Glorot normal; ``torch.nn.init.xavier_normal_``; ``variance_scaling`` with scale
    gain², mode fan_avg, distribution normal (Keras's ``glorot_normal`` is the truncated one).

    Args:
        gain: a number (default 1), ``auto``, ``preserving`` or ``critical``.

    Examples:
        >>> XavierNormal().weight_variance(fan_in=300, fan_out=500)
        0.0025
    """

    formula = "W ~ N(0, gain²·2/(fan_in + fan_out))"

    def scaling(self) -> Scaling:
        return Scaling(self.gain_squared(), "fan_avg", "normal")


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
    r"""He et al. (2015) "Delving deep into rectifiers" init, uniform.

    From "Delving deep into rectifiers: Surpassing human-level performance on ImageNet
    classification" (He, K. et al., 2015). The entries are drawn from :math:`\mathcal{U}(-b, b)` with

    .. math::
        b = \text{gain} \times \sqrt{\frac{3}{\text{fan\_mode}}}

    Also known as He uniform; ``torch.nn.init.kaiming_uniform_``; ``variance_scaling`` with scale
    gain², mode ``mode``, distribution uniform.

    Args:
        mode: ``fan_in`` (default: keeps the forward variance) or ``fan_out`` (the backward one).
        nonlinearity: the activation whose ``torch.nn.init.calculate_gain`` is the gain; default the
            network's own.
        a: the negative slope, for ``nonlinearity: leaky_relu``.
        gain: overrides ``nonlinearity``: a number, ``auto``, ``preserving`` or ``critical``.

    Examples:
        >>> round(KaimingUniform(nonlinearity="relu").resolve(None).weight_variance(fan_in=400, fan_out=500), 12)  # 2/400
        0.005
    """

    formula = "W ~ U(±gain·√(3/fan_mode));  Var = gain²/fan_mode"

    def scaling(self) -> Scaling:
        return Scaling(self.gain_squared(), self.mode, "uniform")


@SCHEMES.register("kaiming_normal", aliases=("he", "he_normal"))
class KaimingNormal(Kaiming):
    r"""He et al. (2015) "Delving deep into rectifiers" init, Gaussian: keeps ReLU nets' variance.

    From "Delving deep into rectifiers: Surpassing human-level performance on ImageNet
    classification" (He, K. et al., 2015). The entries are drawn from :math:`\mathcal{N}(0, \text{std}^2)` with

    .. math::
        \text{std} = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}

    Also known as He normal; ``torch.nn.init.kaiming_normal_``; ``variance_scaling`` with scale gain²,
    mode ``mode``, distribution normal (Keras's ``he_normal`` is the truncated one).

    Args:
        mode: ``fan_in`` (default) or ``fan_out``.
        nonlinearity: the activation whose gain to use; default the network's own.
        a: the negative slope, for ``nonlinearity: leaky_relu``.
        gain: overrides ``nonlinearity``: a number, ``auto``, ``preserving`` or ``critical``.

    Examples:
        >>> round(KaimingNormal(mode="fan_out", nonlinearity="relu").resolve(None).weight_variance(fan_in=300, fan_out=500), 12)
        0.004
    """

    formula = "W ~ N(0, gain²/fan_mode)"

    def scaling(self) -> Scaling:
        return Scaling(self.gain_squared(), self.mode, "normal")


@SCHEMES.register("lecun_uniform")
class LecunUniform(VarianceScaled):
    r"""LeCun et al. (1998) "Efficient BackProp": Kaiming with gain 1 and fan_in, uniform.

    From "Efficient BackProp" (LeCun, Y., Bottou, L., Orr, G. & Müller, K.-R., 1998). The entries
    are drawn from :math:`\mathcal{U}(-b, b)` with

    .. math::
        b = \sqrt{\frac{3}{\text{fan\_in}}}

    Also known as ``variance_scaling`` with scale 1, mode fan_in, distribution uniform (Keras's
    ``lecun_uniform``). No options.

    Examples:
        >>> LecunUniform().weight_variance(fan_in=400, fan_out=500)
        0.0025
    """

    formula = "W ~ U(±√(3/fan_in));  Var = 1/fan_in"

    def scaling(self) -> Scaling:
        return Scaling(1.0, "fan_in", "uniform")


@SCHEMES.register("lecun_normal")
class LecunNormal(VarianceScaled):
    r"""LeCun et al. (1998): N(0, 1/fan_in), the weights SELU's self-normalization assumes.

    From "Efficient BackProp" (LeCun, Y. et al., 1998). The entries are drawn from
    :math:`\mathcal{N}(0, \text{std}^2)` with

    .. math::
        \text{std} = \frac{1}{\sqrt{\text{fan\_in}}}

    Also known as ``variance_scaling`` with scale 1, mode fan_in, distribution normal (Keras's
    ``lecun_normal`` is the truncated one). No options.

    Examples:
        >>> LecunNormal().weight_variance(fan_in=400, fan_out=500)
        0.0025
    """

    formula = "W ~ N(0, 1/fan_in)"

    def scaling(self) -> Scaling:
        return Scaling(1.0, "fan_in", "normal")


@SCHEMES.register("variance_scaling")
class VarianceScaling(VarianceScaled):
    r"""Keras/JAX ``VarianceScaling``: Var = scale/fan, normal, uniform or (corrected) truncated normal.

    The general form of the fan-scaled schemes (Keras ``VarianceScaling``, JAX
    ``jax.nn.initializers.variance_scaling``). With :math:`n` = fan_in, fan_out or
    (fan_in + fan_out)/2 as ``mode`` says, the entries have

    .. math::
        \text{std} = \sqrt{\frac{\text{scale}}{n}}

    drawn from :math:`\mathcal{N}(0, \text{std}^2)`, from :math:`\mathcal{U}(\pm\sqrt{3}\,\text{std})`, or
    from :math:`\mathcal{N}(0, (\text{std}/0.8796)^2)` cut at ±2 of its own std, which has std
    :math:`\text{std}` after the cut (0.87962566103423978 is the std of N(0, 1) cut to [−2, 2]).

    Also known as: ``lecun_normal`` is scale 1, fan_in; ``xavier_*`` (Glorot) scale gain², fan_avg;
    ``kaiming_*`` (He) scale gain², fan_in. Keras's ``he_normal``, ``glorot_normal`` and
    ``lecun_normal`` are this scheme's truncated normal, where initbench's (like PyTorch's) are normal.

    Args:
        scale: the numerator of the variance (> 0).
        mode: ``fan_in`` (default), ``fan_out`` or ``fan_avg``.
        distribution: ``truncated_normal`` (default, as Keras and JAX), ``normal`` or ``uniform``.

    Examples:
        >>> VarianceScaling(scale=2.0, mode="fan_avg").weight_variance(fan_in=300, fan_out=500)
        0.005
        >>> # init: {scheme: variance_scaling, scale: 2, distribution: truncated_normal}  (Keras's he_normal)
    """

    formula = "Var = scale/fan_mode;  truncated_normal: N(0, (std/0.8796)²) cut at ±2 of its std"
    scale: float = Field(default=1.0, gt=0.0)
    mode: FanMode = "fan_in"
    distribution: Distribution = "truncated_normal"

    def scaling(self) -> Scaling:
        return Scaling(self.scale, self.mode, self.distribution)


@SCHEMES.register("orthogonal")
class Orthogonal(InitScheme):
    r"""Saxe et al. (2013): a (semi-)orthogonal matrix times ``gain``, via QR of a Gaussian matrix.

    From "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks"
    (Saxe, A. et al., 2013); drawn by ``torch.nn.init.orthogonal_``, the weight flattened to
    ``[out, in·Πkernel]``:

    .. math::
        W = \text{gain} \cdot Q, \qquad Q^\top Q = I \text{ (tall) or } Q Q^\top = I \text{ (wide)}

    Its variance is the mean of W_ij², gain²/max(fan_in, fan_out); the entries are identically
    distributed but not independent.

    Args:
        gain: a number (default 1), ``auto``, ``preserving`` or ``critical``.

    Examples:
        >>> Orthogonal(gain=2.0).weight_variance(fan_in=100, fan_out=400)
        0.01
    """

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
    r"""PyTorch's own ``nn.Linear`` init: kaiming_uniform with a = √5, i.e. U(±1/√fan_in).

    What ``nn.Linear.reset_parameters`` draws (``kaiming_uniform_(weight, a=math.sqrt(5))``, whose
    gain √(2/(1 + a²)) = √(1/3) makes the bound :math:`\sqrt{3}\cdot\text{gain}/\sqrt{\text{fan\_in}}`):

    .. math::
        W \sim \mathcal{U}\Big(-\frac{1}{\sqrt{\text{fan\_in}}}, \frac{1}{\sqrt{\text{fan\_in}}}\Big)

    For a bias it is the same U(±1/√fan_in) that ``nn.Linear`` gives its bias. Its variance is a
    third of LeCun's, 1/(3·fan_in), which is why deep nets left at it shrink their signal.

    Also known as ``pytorch_default``; ``variance_scaling`` with scale 1/3, mode fan_in, distribution
    uniform (the draws here are PyTorch's, bound 1/√fan_in). No options.

    Examples:
        >>> PyTorchDefault().weight_variance(fan_in=100, fan_out=10) == 1 / 300
        True
    """

    formula = "W ~ U(±1/√fan_in);  Var = 1/(3·fan_in)"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        bound = 1.0 / math.sqrt(context.fan_in)
        tensor.uniform_(-bound, bound, generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return 1.0 / (3.0 * fan_in)



@SCHEMES.register("gpt2")
class GPT2(InitScheme):
    r"""GPT-2's init, as nanoGPT writes it: N(0, 0.02²) for every weight, residual projections smaller.

    From "Language Models are Unsupervised Multitask Learners" (Radford, A. et al., 2019): "we scale
    the weights of residual layers at initialization by a factor of 1/√N where N is the number of
    residual layers", N = 2·n_layer (an attention and an MLP branch per block). Every weight,
    Linear and Embedding alike, is drawn from :math:`\mathcal{N}(0, \text{std}^2)`, except the
    residual output projections:

    .. math::
        W_\text{proj} \sim \mathcal{N}\Big(0, \big(\tfrac{\text{std}}{\sqrt{2 \cdot n_\text{layer}}}\big)^2\Big)

    (nanoGPT: ``normal_(p, mean=0.0, std=0.02/math.sqrt(2 * config.n_layer))`` on every
    ``c_proj.weight``). A projection is the last weight layer of a marked residual branch (a module
    with ``residual_branch = True``), and 2·n_layer the number of branches; for a model that marks
    none, ``projections`` is an ``fnmatch`` glob on the module path (``*.c_proj``) and ``n_layer``
    gives the count. Biases are 0 in GPT-2: keep ``init.bias: zeros``.

    Its weights are not identically distributed across the network, and the fans do not say which
    layer is a projection, so it reports no variance to the theory.

    Also known as the GPT-2 / nanoGPT init, "scaled init" (Megatron-LM's ``scaled_init_method_normal``).

    Args:
        std: the std of every weight but the projections (default 0.02).
        projections: a glob on module paths naming the residual output projections; then
            ``n_layer`` is required. Default: the marked residual branches' last layers.
        n_layer: the number of transformer blocks, with ``projections``.

    Examples:
        >>> GPT2(projections="*.c_proj", n_layer=12).std
        0.02
        >>> # init: {scheme: gpt2, projections: "*.c_proj", n_layer: 12}
    """

    formula = "W ~ N(0, std²);  residual projections N(0, std²/(2·n_layer)), std = 0.02"
    fills_bias = False
    no_bias_reason = "draws weights only (GPT-2 starts every bias at 0: init.bias: zeros)"
    std: float = Field(default=0.02, ge=0.0)
    projections: str | None = None
    n_layer: int | None = Field(default=None, ge=1)

    def model_post_init(self, context: object) -> None:
        if (self.projections is None) != (self.n_layer is None):
            raise ValueError("gpt2 needs projections and n_layer together (a glob such as '*.c_proj' and the number of blocks), or neither")

    def residual_branches(self, context: ParamContext) -> int | None:
        """2·n_layer if ``context`` is a residual output projection, else None."""
        if self.projections is not None:
            return 2 * self.n_layer if fnmatch.fnmatchcase(context.module_path, self.projections) else None  # type: ignore[operator]
        return context.branches if context.position is not None and context.position == context.branch_length else None

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        branches = self.residual_branches(context)
        tensor.normal_(0.0, self.std if branches is None else self.std / math.sqrt(branches), generator=generator)

    def finish_model(self, model: nn.Module) -> None:
        # A glob that names no module would leave every projection at the full std, silently.
        if self.projections is not None and not any(fnmatch.fnmatchcase(path, self.projections) for path, _ in model.named_modules()):
            raise InitbenchError(
                f"gpt2: projections '{self.projections}' matches no module of the model.",
                hint="Give a glob on the residual output projections' module paths, as `initbench probe` lists them (for example '*.c_proj').",
            )


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


# The schemes of these modules register themselves in SCHEMES, which they import from here:
# importing them last means every user of SCHEMES sees them (this module is complete by now).
# isometric: delta-orthogonal, dirac, ZerO; plugins: a user's scheme by import path;
# model_schemes: the schemes that change or read the whole model (Fixup, SkipInit, checkpoint);
# lsuv: the data-dependent LSUV, fitted on a batch by the experiments.
import initbench.isometric
import initbench.lsuv
import initbench.model_schemes
import initbench.plugins  # noqa: F401
