"""The leaf of :mod:`initbench.schemes`: :class:`InitScheme`, the :data:`SCHEMES` registry, fans,
gains and the draws the schemes share, and what the model schemes share (an inner scheme, a model's
own state dict). Every scheme module imports this one only.

A scheme fills one parameter in place from a ``torch.Generator``, told where the parameter sits by a
:class:`~initbench.nets.architectures.ParamContext` (module path and type, weight or bias, shape, fans,
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
from torch import nn

from initbench.core.errors import InitbenchError
from initbench.core.registry import Component, Registry, build_from_spec
from initbench.nets.activations import Activation

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext

FanMode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["normal", "uniform", "truncated_normal"]
#: A gain is a number, or a rule to compute one for the network's activation.
Gain = float | Literal["auto", "preserving", "critical"]

#: Attribute of a model that lists the state_dict keys of structure added inert (another run's scheme's).
INERT_KEYS = "initbench_inert_keys"

#: Std of N(0, 1) truncated to [−2, 2]; Keras divides by it so the truncated std comes out right.
TRUNCATED_STD_AT_2 = 0.87962566103423978


def fan(fan_in: int, fan_out: int, mode: FanMode) -> float:
    """The fan a variance is divided by: ``fan_in``, ``fan_out`` or their mean (``fan_avg``)."""
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def resolve_gain(gain: Gain, activation: Activation) -> float:
    """A numeric gain for ``activation``.

    ``auto`` is PyTorch's ``calculate_gain`` where torch defines one (so results match what PyTorch
    users expect) and the variance-preserving gain otherwise; ``preserving`` solves
    σ_w²·E[φ(z)²] = 1, z ~ N(0,1); ``critical`` solves χ₁ = 1 (see :mod:`initbench.theory.gains`).
    """
    if isinstance(gain, (int, float)):
        return float(gain)
    if gain == "auto":
        torch_gain = activation.torch_gain()
        if torch_gain is not None:
            return torch_gain
        gain = "preserving"
    # Deferred for start-up time: only computed gains need the theory, which takes ~25 ms to import.
    from initbench.theory.gains import critical_gain, variance_preserving_gain

    value = variance_preserving_gain(activation) if gain == "preserving" else critical_gain(activation)
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
    #: True for schemes that change or read the whole model (:mod:`~initbench.schemes.whole_model`,
    #: ``checkpoint``): they run on the module backend, which calls :meth:`prepare_model` and :meth:`finish_model`.
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


def inner_scheme(spec: str, what: str) -> InitScheme:
    """The per-parameter scheme ``spec`` that a model scheme draws with; it must draw (no model scheme, no ``constructor``)."""
    scheme = build_from_spec(SCHEMES, spec)
    if scheme.needs_model or scheme.keeps_constructor_init:
        raise InitbenchError(f"{what} '{spec}' must draw each parameter itself.", hint="Name a per-parameter scheme, such as kaiming_normal or default.")
    return scheme


def own_state_dict(model: nn.Module, keep_vars: bool = False) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` without the structure other runs' schemes added inert."""
    inert = getattr(model, INERT_KEYS, set())
    return {key: value for key, value in model.state_dict(keep_vars=keep_vars).items() if key not in inert}
