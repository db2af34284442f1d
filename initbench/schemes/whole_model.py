"""Schemes that change the whole model: Fixup and SkipInit/ReZero, which add scalars to every
residual branch.

A per-parameter scheme (:mod:`~initbench.schemes.classic`, :mod:`~initbench.schemes.scaling`,
:mod:`~initbench.schemes.structured`) fills one tensor at a time. These schemes also act on the
model, through two hooks the module backend calls (:func:`~initbench.engines.modules.build_stack`):

1. :meth:`~initbench.schemes.base.InitScheme.prepare_model`, before the draw: Fixup adds its scalar
   biases and multipliers, SkipInit its gates. They are registered ``nn.Parameter``\\ s, so
   ``torch.func.stack_module_state`` stacks them and they train, and the forward hooks that apply
   them are module-level functions reading them from the module they are called on, so
   ``functional_call``'s swapped, per-run tensors are the ones used.
2. :meth:`~initbench.schemes.base.InitScheme.finish_model`, after the draw: Fixup zeroes the biases
   of the layers whose weights it zeroes. (The ``checkpoint`` scheme, :mod:`~initbench.schemes.checkpoint`,
   copies a file's tensors over the drawn ones in the same hook.)

The runs of a stack share one model structure, so when one run's scheme adds structure, every
model of the stack gets it: inert in the other runs' models (a flag buffer of 0 makes each hook
the identity, exactly: x + 0·b = x, y·(0·s + 1) = y). Their numbers are those they have alone.
The scalars draw nothing (no scheme draws a parameter outside a weight layer), so the run's
generator gives the same draws as without them.

A residual branch is a module whose attribute ``residual_branch`` is True (see
:mod:`initbench.nets.architectures`); the built-in ``resmlp`` marks its branches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from pydantic import PrivateAttr
from torch import nn

from initbench.core.errors import InitbenchError
from initbench.nets.activations import Activation
from initbench.nets.architectures import ActivationModule, parameter_contexts
from initbench.schemes.base import INERT_KEYS, SCHEMES, InitScheme, inner_scheme

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext

#: torch's activation modules that are not element-wise (they mix features): Fixup adds no bias before them.
NOT_ELEMENTWISE = (nn.MultiheadAttention, nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d, nn.GLU)


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s floating-point parameters (new scalars take it)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype())


def branch_roots(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The residual branches of ``model`` (modules with ``residual_branch = True``), in model order."""
    return [(name, module) for name, module in model.named_modules() if getattr(module, "residual_branch", False)]


def is_elementwise_activation(module: nn.Module) -> bool:
    """initbench's φ modules and torch's element-wise activations (ReLU, GELU, Tanh, ...)."""
    if isinstance(module, ActivationModule):
        return True
    return type(module).__module__ == "torch.nn.modules.activation" and not isinstance(module, NOT_ELEMENTWISE)


def owns_weight(module: nn.Module) -> bool:
    """Whether ``module`` owns a parameter of two or more dimensions (a scheme would draw a scalar on it as a bias)."""
    return any(parameter.dim() >= 2 for parameter in module.parameters(recurse=False))


def add_scalar(module: nn.Module, name: str, value: float, dtype: torch.dtype) -> None:
    """Register a learnable 0-d parameter ``name`` = ``value`` on ``module``."""
    module.register_parameter(name, nn.Parameter(torch.tensor(value, dtype=dtype)))


def add_flag(module: nn.Module, name: str, owner: bool, dtype: torch.dtype) -> None:
    """Register the non-persistent buffer ``name``: 1 where the structure is the run's own, 0 where it is inert."""
    module.register_buffer(name, torch.tensor(1.0 if owner else 0.0, dtype=dtype), persistent=False)


def blend(value: torch.Tensor, on: torch.Tensor, identity: float) -> torch.Tensor:
    """``value`` where the flag ``on`` is 1, ``identity`` where it is 0 (exactly, for finite values)."""
    return on * value + (1.0 - on) * identity


@contextmanager
def structure(model: nn.Module, owner: bool) -> Iterator[None]:
    """Record the state_dict keys the block adds to ``model`` as inert unless ``owner``: they are no
    part of the run's own model, so its saved state dict and a checkpoint's key match leave them out."""
    before = set(model.state_dict())
    yield
    if not owner:
        added = set(model.state_dict()) - before
        setattr(model, INERT_KEYS, getattr(model, INERT_KEYS, set()) | added)


class Shift(nn.Module):
    """Fixup's scalar bias before a weight layer: held by a child, since a scalar the layer owned
    itself would be drawn as its bias."""

    def __init__(self, owner: bool, dtype: torch.dtype) -> None:
        super().__init__()
        add_scalar(self, "value", 0.0, dtype)
        add_flag(self, "on", owner, dtype)


def shift_layer_input(module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook of a weight layer: x ← x + b, b its ``fixup_shift``."""
    shift = module.fixup_shift
    return (inputs[0] + shift.on * shift.value, *inputs[1:])


def shift_activation_input(module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook of an activation: x ← x + b, b its ``fixup_shift``."""
    return (inputs[0] + module.fixup_on * module.fixup_shift, *inputs[1:])


def fixup_branch_output(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    """Forward hook of a branch: F(x) ← s·F(x) + b, Fixup's multiplier and last bias."""
    return output * blend(module.fixup_scale, module.fixup_on, 1.0) + module.fixup_on * module.fixup_bias


def gate_branch_output(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    """Forward hook of a branch: F(x) ← α·F(x), SkipInit's gate."""
    return output * blend(module.skipinit_gate, module.skipinit_on, 1.0)


class Wrapping(InitScheme):
    """A model scheme whose per-parameter draws come from an inner scheme, named by ``inner``."""

    needs_model = True
    fills_bias = False
    no_bias_reason = "changes the whole model"
    inner: str = "kaiming_normal"
    _inner: InitScheme = PrivateAttr()

    def model_post_init(self, context: object) -> None:
        self._inner = inner_scheme(self.inner, f"{self.registry_name}: inner scheme")

    def resolve(self, activation: Activation) -> InitScheme:
        return type(self)(**{**self.model_dump(), "inner": self._inner.resolve(activation).spec()})

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        self._inner.sample_(tensor, context, generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None  # layers differ by their place in the network: no one i.i.d. variance

    def residual_branches(self, model: nn.Module, purpose: str = "") -> list[tuple[str, nn.Module]]:
        """``model``'s marked residual branches, or a user error: none (``purpose`` ends the
        message: " to gate"), or a branch that is itself a weight layer (no layers inside to change)."""
        roots = branch_roots(model)
        if not roots:
            raise InitbenchError(
                f"init scheme {self.registry_name}: the model has no residual branch{purpose}.",
                hint="Use model.arch resmlp, or a module whose residual branches set residual_branch = True.",
            )
        for name, root in roots:
            if owns_weight(root):
                raise InitbenchError(
                    f"init scheme {self.registry_name}: the residual branch {name or 'the model'} ({type(root).__name__}) is itself a weight layer.",
                    hint="Set residual_branch = True on the module that holds the branch's layers.",
                )
        return roots


@SCHEMES.register("fixup")
class Fixup(Wrapping):
    """Zhang, Dauphin & Ma (2019), "Fixup Initialization": residual nets that train without normalization.

    With L residual branches of m weight layers each (arXiv 1901.09321, §3; reference code
    github.com/hongyi-zhang/Fixup, ``FixupBasicBlock``):

    1. the last layer of every branch, and the classification layer (the network's last weight
       layer, when it is outside every branch), are 0, weight and bias;
    2. every other layer is drawn by ``inner`` (He), and the weight layers inside the branches
       are then scaled by L^(−1/(2m−2)); with m = 1 a branch's only layer is its last, so it is
       0 and nothing is scaled;
    3. every branch gets a scalar multiplier (1) on its output and scalar biases (0) before each
       linear or convolution and each element-wise activation inside it, and after the
       multiplier (the reference code's ``bias2b``).

    At init every block is the identity. The scaled layers are the inner scheme's draws of the
    same seed times the factor. The reference code also puts a scalar bias after its stem and
    before its classifier; here the scalars sit inside the branches only.

    Also known as fixed-update initialization. It needs marked residual branches, so it runs on
    the module backend (an mlp too), and every model of a stack carries its scalars (inert in the
    other schemes' runs).

    Args:
        inner: the scheme that draws every layer before the factors (default ``kaiming_normal``).

    Examples:
        >>> from initbench.nets.architectures import ParamContext
        >>> first = ParamContext("blocks.0.branch.0", "Linear", "weight", (8, 8), 8, 8, 1, 20, branch=1, position=1, branch_length=2, branches=10)
        >>> Fixup.factor(first)  # L^(−1/(2m−2)) with L = 10 branches of m = 2 layers
        0.31622776601683794
        >>> Fixup.factor(ParamContext("blocks.0.branch.2", "Linear", "weight", (8, 8), 8, 8, 2, 20, branch=1, position=2, branch_length=2, branches=10))
        0.0
    """

    formula = "W_branch,last = W_classifier = 0;  W_branch,other = L^(−1/(2m−2))·W_He;  F(x) → s·F(x + b) + b′,  s = 1, b = 0"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        self._inner.sample_(tensor, context, generator)
        factor = self.factor(context)
        if factor == 0.0:
            tensor.zero_()
        elif factor != 1.0:
            tensor.mul_(factor)

    @staticmethod
    def factor(context: ParamContext) -> float:
        """What the inner scheme's draw is multiplied by: 0, L^(−1/(2m−2)) or 1 (see the class docstring)."""
        if context.branch is None:
            return 0.0 if context.layer == context.depth else 1.0
        assert context.branch_length is not None and context.branches is not None and context.position is not None
        if context.position == context.branch_length:
            return 0.0
        return context.branches ** (-1.0 / (2 * context.branch_length - 2))

    def prepare_model(self, model: nn.Module, owner: bool) -> None:
        roots = self.residual_branches(model)  # without branches it would only zero the last layer: a dead net, not Fixup
        dtype = model_dtype(model)
        with structure(model, owner):
            for _, root in roots:
                add_scalar(root, "fixup_scale", 1.0, dtype)
                add_scalar(root, "fixup_bias", 0.0, dtype)
                add_flag(root, "fixup_on", owner, dtype)
                root.register_forward_hook(fixup_branch_output)
                for module in list(root.modules())[1:]:
                    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
                        module.fixup_shift = Shift(owner, dtype)
                        module.register_forward_pre_hook(shift_layer_input)
                    elif is_elementwise_activation(module):
                        add_scalar(module, "fixup_shift", 0.0, dtype)
                        add_flag(module, "fixup_on", owner, dtype)
                        module.register_forward_pre_hook(shift_activation_input)

    def finish_model(self, model: nn.Module) -> None:
        with torch.no_grad():
            for _, parameter, context in parameter_contexts(model):
                if context is not None and context.role == "bias" and self.factor(context) == 0.0:
                    parameter.zero_()


@SCHEMES.register("skipinit", aliases=("rezero",))
class SkipInit(Wrapping):
    """De & Smith (2020) SkipInit / Bachlechner et al. (2020) ReZero: x + α·F(x), a learnable α = 0 per branch.

    Every residual branch's output is multiplied by a scalar α, initialised to ``alpha`` (0: each
    block is the identity at init, as both papers do; arXiv 2002.10444, 2003.04887). The weights
    inside are drawn by ``inner``.

    Also known as ``rezero`` (the same gate; ReZero's transformer variant drops the LayerNorm,
    which is the model's choice here, not the scheme's).

    Args:
        inner: the scheme that draws the weights (default ``kaiming_normal``).
        alpha: the gate's initial value (default 0).

    Examples:
        >>> SkipInit(alpha=0.1).spec()
        'skipinit:alpha=0.1'
    """

    formula = "x ← x + α·F(x),  α = 0;  W ~ inner"
    alpha: float = 0.0

    def prepare_model(self, model: nn.Module, owner: bool) -> None:
        roots = self.residual_branches(model, " to gate")
        dtype = model_dtype(model)
        with structure(model, owner):
            for _, root in roots:
                add_scalar(root, "skipinit_gate", self.alpha, dtype)
                add_flag(root, "skipinit_on", owner, dtype)
                root.register_forward_hook(gate_branch_output)
