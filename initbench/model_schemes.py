"""Schemes that change or read the whole model: Fixup, SkipInit/ReZero, and a checkpoint.

A per-parameter scheme (:mod:`initbench.schemes`) fills one tensor at a time. These schemes also
act on the model, through two hooks the module backend calls (:func:`~initbench.module_backend.build_stack`):

1. :meth:`~initbench.schemes.InitScheme.prepare_model`, before the draw: Fixup adds its scalar
   biases and multipliers, SkipInit its gates. They are registered ``nn.Parameter``\\ s, so
   ``torch.func.stack_module_state`` stacks them and they train, and the forward hooks that apply
   them are module-level functions reading them from the module they are called on, so
   ``functional_call``'s swapped, per-run tensors are the ones used.
2. :meth:`~initbench.schemes.InitScheme.finish_model`, after the draw: a checkpoint copies its
   tensors (buffers such as BatchNorm's running statistics included) over the drawn ones.

The runs of a stack share one model structure, so when one run's scheme adds structure, every
model of the stack gets it: inert in the other runs' models (a flag buffer of 0 makes each hook
the identity, exactly: x + 0·b = x, y·(0·s + 1) = y). Their numbers are those they have alone.
The scalars draw nothing (no scheme draws a parameter outside a weight layer), so the run's
generator gives the same draws as without them.

A residual branch is a module whose attribute ``residual_branch`` is True (see
:mod:`initbench.architectures`); the built-in ``resmlp`` marks its branches.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import stat
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from pydantic import PrivateAttr
from torch import nn

from initbench.activations import Activation
from initbench.architectures import ActivationModule
from initbench.errors import InitbenchError
from initbench.registry import build_from_spec
from initbench.schemes import SCHEMES, InitScheme

if TYPE_CHECKING:
    from initbench.architectures import ParamContext

#: Attribute of a model that lists the state_dict keys of structure added inert (another run's scheme's).
INERT_KEYS = "initbench_inert_keys"
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


def own_state_dict(model: nn.Module, keep_vars: bool = False) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` without the structure other runs' schemes added inert."""
    inert = getattr(model, INERT_KEYS, set())
    return {key: value for key, value in model.state_dict(keep_vars=keep_vars).items() if key not in inert}


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


def inner_scheme(spec: str, what: str) -> InitScheme:
    """The per-parameter scheme ``spec`` that a model scheme draws with; it must draw (no model scheme, no ``constructor``)."""
    scheme = build_from_spec(SCHEMES, spec)
    if scheme.needs_model or scheme.keeps_constructor_init:
        raise InitbenchError(f"{what} '{spec}' must draw each parameter itself.", hint="Name a per-parameter scheme, such as kaiming_normal or default.")
    return scheme


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
        >>> from initbench.architectures import ParamContext
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
        from initbench.architectures import parameter_contexts  # the contexts the draw used

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


def check_regular_file(path: str) -> os.stat_result:
    """``path``'s stat, or a user error when it is missing or not a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InitbenchError(f"Checkpoint file '{path}' does not exist.", hint="Give the path of a file saved with torch.save(model.state_dict(), path), or by train.save_models.") from None
    except (OSError, ValueError) as error:  # no permission, a name too long, a NUL byte in it
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InitbenchError(f"Checkpoint file '{path}' cannot be opened ({reason}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise InitbenchError(f"Checkpoint '{path}' is not a file.")
    return info


@functools.lru_cache(maxsize=4)
def _load_state_dict(path: str, modified: int, size: int) -> dict[str, torch.Tensor]:
    """The file's state dict, loaded once per version of the file (``modified``, ``size``)."""
    try:
        with warnings.catch_warnings():  # torch warns about what it refuses; the error below says it in one line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses code (a pickle that would call a function) with a long message
        first_line = (str(error).strip().splitlines() or [""])[0]
        if "Weights only load failed" in first_line:  # torch's advice there is to load it with code: not ours to give
            first_line = "it holds Python objects besides tensors, which loading would run code to build"
        raise InitbenchError(
            f"Checkpoint file '{path}' cannot be loaded as weights only: {type(error).__name__}: {first_line}",
            hint="initbench loads checkpoints with torch.load(weights_only=True), which runs no code: save a state dict, torch.save(model.state_dict(), path).",
        ) from None
    if not isinstance(state, Mapping) or not state or not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        nested = [key for key in ("state_dict", "model_state_dict", "model") if isinstance(state, Mapping) and isinstance(state.get(key), Mapping)]
        raise InitbenchError(
            f"Checkpoint file '{path}' holds a {type(state).__name__}, not a state dict (names → tensors)"
            + (f"; its '{nested[0]}' entry looks like one (a training checkpoint's layout)." if nested else "."),
            hint="Save the model's own state dict: torch.save(model.state_dict(), path).",
        )
    return dict(state)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict in the file at ``path``, loaded with ``torch.load(weights_only=True)`` (no code runs)."""
    info = check_regular_file(path)
    return _load_state_dict(path, info.st_mtime_ns, info.st_size)


def listed(names: list[str], most: int = 4) -> str:
    """``a, b, c`` or ``a, b, c, d and 5 more``."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def load_matching(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool, path: str, exclude: str = "") -> int:
    """Copy ``state``'s tensors into ``model`` (parameters and buffers, by state_dict name); returns how many.

    ``strict``: the file's names and the model's must be the same. Otherwise the names both have
    are loaded and the model's others keep their draw. Shapes and dtypes must match either way.
    Names matching the ``fnmatch`` pattern ``exclude`` are left out on both sides: they keep their draw.
    """
    if exclude:
        kept = {key: value for key, value in state.items() if not fnmatch.fnmatch(key, exclude)}
        if not kept:
            raise InitbenchError(f"Checkpoint '{path}': exclude='{exclude}' leaves none of the file's {len(state)} tensors to load.", hint="Exclude only the tensors to draw afresh, for example head.*.")
        state = kept
    own = {key: value for key, value in own_state_dict(model).items() if not (exclude and fnmatch.fnmatch(key, exclude))}
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if strict and (missing or unexpected):
        parts = [f"{len(missing)} of the model's tensors are not in the file ({listed(missing)})"] if missing else []
        parts += [f"{len(unexpected)} of the file's are not in the model ({listed(unexpected)})"] if unexpected else []
        raise InitbenchError(
            f"Checkpoint '{path}' does not match the model: {'; '.join(parts)}.",
            hint="Save the file from a model of the same architecture, or use checkpoint:strict=false to load the tensors that match and draw the rest with the fallback scheme.",
        )
    matched = [key for key in own if key in state]
    if not matched:
        raise InitbenchError(f"Checkpoint '{path}': none of its {len(state)} tensors ({listed(list(state))}) is in the model.", hint="Save the file from a model of the same architecture.")
    shapes = [f"{key} is {list(state[key].shape)} in the file and {list(own[key].shape)} in the model" for key in matched if state[key].shape != own[key].shape]
    if shapes:
        raise InitbenchError(f"Checkpoint '{path}': tensor shapes differ: {listed(shapes, 3)}.", hint="Save the file from a model of the same architecture and sizes.")
    dtypes = [f"{key} is {state[key].dtype} in the file and {own[key].dtype} in the model" for key in matched if state[key].dtype != own[key].dtype]
    if dtypes:
        raise InitbenchError(f"Checkpoint '{path}': tensor dtypes differ: {listed(dtypes, 3)}.", hint="Set the run's dtype (float32 or float64) to the one the file was saved in.")
    with torch.no_grad():
        for key in matched:
            own[key].copy_(state[key])
    return len(matched)


@SCHEMES.register("checkpoint", aliases=("pretrained",))
class Checkpoint(InitScheme):
    """Start from a saved state dict: the "pretrained" init.

    ``path`` is a file saved with ``torch.save(model.state_dict(), path)`` from a model of the same
    architecture (``train.save_models`` writes one per run). It is read with
    ``torch.load(weights_only=True)``, so a file can hold tensors but cannot run code. Every
    parameter is first drawn by ``fallback`` (the run's draw order is unchanged), then the file's
    tensors, buffers included (BatchNorm's running statistics), replace them. ``strict`` (the
    default) requires the file's names to be the model's; with ``strict: false`` the model's
    tensors that the file lacks keep the fallback's draw (and the file's others are ignored).
    ``exclude``, an ``fnmatch`` pattern of names (``head.*``), keeps those tensors on the fallback's
    draw, file or not: fine-tuning with a fresh classifier. summary.json records how many tensors
    came from the file. The file is read before a run claims its directory (:meth:`check_inputs`).

    Also known as ``pretrained``; what ``model.load_state_dict(torch.load(path, weights_only=True))``
    does after a model is built.

    Args:
        path: the state dict's file.
        strict: whether the file's names must be exactly the model's (default true).
        fallback: the scheme that draws every tensor first (default ``default``).
        exclude: an ``fnmatch`` pattern of names that keep the fallback's draw (``head.*``).

    Examples:
        >>> Checkpoint(path="run/models/he-seed0.pt", exclude="head.*").spec()
        'checkpoint:path=run/models/he-seed0.pt,exclude=head.*'
    """

    formula = "W = W_file;  W ~ fallback where the file lacks it (strict: false) or its name matches exclude"
    needs_model = True
    fills_bias = False
    no_bias_reason = "loads a whole model's tensors"
    path: str = ""
    strict: bool = True
    fallback: str = "default"
    exclude: str = ""
    _fallback: InitScheme = PrivateAttr()
    _loaded: dict[str, int] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object) -> None:
        if not self.path:
            raise InitbenchError("init scheme checkpoint needs the file to start from: checkpoint:path=FILE.", hint="FILE holds a state dict, torch.save(model.state_dict(), FILE), or one train.save_models wrote.")
        self._fallback = inner_scheme(self.fallback, "checkpoint: fallback scheme")
        # The file is read by check_inputs before a run, not here: a config (a shipped one, or a run
        # directory's config.yaml that `initbench report` rereads) stays valid without it.

    def resolve(self, activation: Activation) -> InitScheme:
        return type(self)(**{**self.model_dump(), "fallback": self._fallback.resolve(activation).spec()})

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        self._fallback.sample_(tensor, context, generator)

    def check_inputs(self) -> None:
        read_state_dict(self.path)  # a missing, unsafe or malformed file is refused before the run

    def finish_model(self, model: nn.Module) -> None:
        self._loaded["tensors_from_file"] = load_matching(model, read_state_dict(self.path), self.strict, self.path, self.exclude)
        self._loaded["model_tensors"] = len(own_state_dict(model))

    def notes(self) -> dict[str, Any]:
        return {"checkpoint": {"path": self.path, "strict": self.strict, **self._loaded}} if self._loaded else {}

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None  # trained weights: no i.i.d. variance
