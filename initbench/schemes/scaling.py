"""Variance-scaling schemes: Var(W_ij) = scale / fan, the one general form (``variance_scaling``)
and its named cases (Xavier/Glorot, Kaiming/He, LeCun), each a (scale, mode, distribution).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
from pydantic import Field

from initbench.core.errors import InitbenchError
from initbench.nets.activations import Activation
from initbench.schemes.base import SCHEMES, Distribution, FanMode, Gain, InitScheme, fan, resolve_gain, sample_with_moments

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext


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
