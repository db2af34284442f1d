"""Networks as data: the built-in architectures, a user's factory, and every parameter's context.

A scheme fills one parameter at a time and is told where it sits (:class:`ParamContext`): the
module's dotted path and type, whether it is a weight or a bias, its shape and fans (computed as
``torch.nn.init._calculate_fan_in_and_fan_out`` does, receptive field included for convolutions),
its layer's index among the network's weight layers and their number, and, inside a residual
branch, which branch and which position in it. The built-in schemes read only the fans; schemes
such as Fixup or GPT-2's scaled init need the rest.

Built-in architectures (``model.arch``):

- ``mlp``: ``depth`` blocks Linear → norm → φ (the plain MLP, without norm, runs on the fast stacked
  engine instead; see :mod:`initbench.engines.stacked`).
- ``resmlp``: ``depth`` residual blocks x ← x + W₂ φ(norm(W₁ x)).
- ``cnn``: ``depth`` blocks of a 3×3 convolution (padding 1) → norm → φ; for training, global
  average pooling and a linear head.
- ``module``: a user's ``nn.Module`` from ``model.factory`` (``"package.module:callable"``), called
  with ``model.kwargs``.

A module whose attribute ``residual_branch`` is True marks a residual branch: the weight layers
inside it get ``branch`` (1-based, in model order), ``position`` (1-based inside the branch),
``branch_length`` (m) and ``branches`` (L) in their context.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from initbench.core.errors import InitbenchError

if TYPE_CHECKING:
    from initbench.nets.activations import Activation
from initbench.nets.activations import Activation

Role = Literal["weight", "bias"]
#: Modules whose weight is a scale and whose bias is a shift: a scheme leaves them at 1 and 0.
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


@dataclass(frozen=True)
class ParamContext:
    """Where a parameter sits in its network, handed to every scheme with the tensor to fill.

    Attributes:
        module_path: dotted path of the owning module (``blocks.3.branch.0``; ``""`` for the root).
        module_type: the owning module's class name (``Linear``, ``Conv2d``).
        role: ``weight`` or ``bias``.
        shape: the parameter's shape.
        fan_in, fan_out: as ``torch.nn.init._calculate_fan_in_and_fan_out`` computes them for the
            layer's weight (a bias gets its layer's fans): for a weight ``[out, in, *kernel]``,
            fan_in = in·Πkernel and fan_out = out·Πkernel.
        layer: 1-based index of the layer among the network's weight layers, in model order.
        depth: the number of weight layers.
        branch: 1-based index of the residual branch the layer sits in (None outside branches).
        position: 1-based position of the layer inside its branch.
        branch_length: m, the number of weight layers in the branch.
        branches: L, the number of residual branches in the network.
    """

    module_path: str
    module_type: str
    role: Role
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    layer: int
    depth: int
    branch: int | None = None
    position: int | None = None
    branch_length: int | None = None
    branches: int | None = None


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``, exactly as ``torch.nn.init._calculate_fan_in_and_fan_out``.

    For ``[out, in, *kernel]``: fan_in = in·Πkernel, fan_out = out·Πkernel. A 1-D tensor has no
    fans of its own; it gets (n, n).
    """
    if len(shape) < 2:
        size = shape[0] if shape else 1
        return size, size
    receptive_field = 1
    for size in shape[2:]:
        receptive_field *= size
    return shape[1] * receptive_field, shape[0] * receptive_field


def linear_context(layer: int, depth: int, fan_in: int, fan_out: int, role: Role) -> ParamContext:
    """The context of layer ``layer``'s weight ``[fan_out, fan_in]`` or bias in a plain MLP (the fast engine)."""
    shape = (fan_out, fan_in) if role == "weight" else (fan_out,)
    return ParamContext(f"layers.{layer - 1}", "Linear", role, shape, fan_in, fan_out, layer, depth)


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that own a weight of two or more dimensions, in model order (what a scheme draws)."""
    return [(name, module) for name, module in model.named_modules() if any(p.dim() >= 2 for p in module.parameters(recurse=False))]


def parameter_contexts(model: nn.Module) -> list[tuple[nn.Module, nn.Parameter, ParamContext | None]]:
    """Every parameter of ``model`` in registration order, with its owning module and its context.

    The context is None for parameters no scheme draws: those of normalization layers and other
    parameters of fewer than two dimensions outside a layer with a weight (scalars like ReZero's α).
    """
    layers = weight_layers(model)
    index = {name: number for number, (name, _) in enumerate(layers, start=1)}
    branch_of: dict[str, tuple[int, int, int]] = {}  # layer path -> (branch, position, m)
    branch_roots = [name for name, module in model.named_modules() if getattr(module, "residual_branch", False)]
    for branch, root in enumerate(branch_roots, start=1):
        inside = [name for name, _ in layers if root == "" or name == root or name.startswith(root + ".")]
        for position, name in enumerate(inside, start=1):
            branch_of[name] = (branch, position, len(inside))
    contexts: list[tuple[nn.Module, nn.Parameter, ParamContext | None]] = []
    for module_name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        main = next((p for p in own.values() if p.dim() >= 2), None)
        for parameter in own.values():
            if is_norm(module) or main is None:
                contexts.append((module, parameter, None))
                continue
            role: Role = "weight" if parameter.dim() >= 2 else "bias"
            fan_in, fan_out = fans(tuple((parameter if role == "weight" else main).shape))
            branch, position, length = branch_of.get(module_name, (None, None, None))
            context = ParamContext(
                module_name, type(module).__name__, role, tuple(parameter.shape), fan_in, fan_out, index[module_name], len(layers),
                branch, position, length, len(branch_roots) or None,
            )
            contexts.append((module, parameter, context))
    return contexts


class ActivationModule(nn.Module):
    """φ as a module, so hooks see it and ``print(model)`` names it."""

    def __init__(self, activation: Activation) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.activation(h)

    def extra_repr(self) -> str:
        return self.activation.spec()


Norm = Literal["none", "batchnorm", "layernorm"]


def norm_layer(kind: Norm, features: int, image: bool) -> nn.Module | None:
    """The normalization after a layer: BatchNorm over the batch, LayerNorm over the features.

    For images, ``layernorm`` is GroupNorm with one group: it normalizes each example over its
    channels and pixels, what LayerNorm does for a feature vector.
    """
    if kind == "none":
        return None
    if kind == "batchnorm":
        return nn.BatchNorm2d(features) if image else nn.BatchNorm1d(features)
    return nn.GroupNorm(1, features) if image else nn.LayerNorm(features)


class Block(nn.Sequential):
    """One observed layer of a built-in net: weight layer → norm → φ. Its output is one row of the statistics."""

    def __init__(self, layer: nn.Module, norm: nn.Module | None, activation: Activation) -> None:
        super().__init__(*([layer] + ([norm] if norm is not None else []) + [ActivationModule(activation)]))


class Branch(nn.Sequential):
    """The residual branch W₂ φ(norm(W₁ x)) of a :class:`ResidualBlock`."""

    residual_branch = True


class ResidualBlock(nn.Module):
    """x ← x + W₂ φ(norm(W₁ x)), ``width`` units throughout."""

    def __init__(self, width: int, activation: Activation, bias: bool, norm: Norm) -> None:
        super().__init__()
        normalization = norm_layer(norm, width, image=False)
        layers: list[nn.Module] = [nn.Linear(width, width, bias=bias)]
        layers += [normalization] if normalization is not None else []
        layers += [ActivationModule(activation), nn.Linear(width, width, bias=bias)]
        self.branch = Branch(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Head(nn.Module):
    """The output layer of a training net: global average pooling for images, then a linear map."""

    def __init__(self, features: int, outputs: int, bias: bool, image: bool) -> None:
        super().__init__()
        self.image = image
        self.linear = nn.Linear(features, outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(-2, -1)) if self.image else x)


class Network(nn.Module):
    """A built-in net: optional ``stem`` (training input layer), ``blocks`` (one row each), optional ``head``."""

    def __init__(self, stem: nn.Module | None, blocks: list[nn.Module], head: nn.Module | None) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem is not None:
            x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x if self.head is None else self.head(x)


def build_builtin(
    arch: str, activation: Activation, widths: list[int], inputs: int, bias: bool, norm: Norm, outputs: int | None
) -> Network:
    """A built-in ``mlp``, ``resmlp`` or ``cnn``.

    Args:
        arch: which one.
        activation: φ.
        widths: each block's width (channels for the cnn); the resmlp's are all equal.
        inputs: input features (channels for the cnn).
        bias: whether weight layers have biases.
        norm: the normalization after each weight layer (inside the branch for resmlp).
        outputs: the head's outputs for training; None for the signal-propagation experiments,
            which observe the blocks and have no head.
    """
    image = arch == "cnn"
    stem = None
    blocks: list[nn.Module] = []
    if arch == "resmlp":
        if inputs != widths[0]:  # training: map the data to the residual stream's width first
            stem = Block(nn.Linear(inputs, widths[0], bias=bias), None, activation)
        blocks = [ResidualBlock(widths[0], activation, bias, norm) for _ in widths]
    else:
        fan_ins = [inputs, *widths[:-1]]
        for fan_in, width in zip(fan_ins, widths, strict=True):
            layer = nn.Conv2d(fan_in, width, 3, padding=1, bias=bias) if image else nn.Linear(fan_in, width, bias=bias)
            blocks.append(Block(layer, norm_layer(norm, width, image), activation))
    head = None if outputs is None else Head(widths[-1], outputs, bias, image)
    return Network(stem, blocks, head)


def import_factory(spec: str, what: str = "factory", example: str = "torch.nn:TransformerEncoderLayer") -> Any:
    """The callable named ``"package.module:attribute"``, imported now (only when a run asks for it).

    ``what`` names it in errors (``factory``, ``scheme plugin``), ``example`` shows the form.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise InitbenchError(f"Cannot read {what} '{spec}'.", hint=f"Write it as package.module:callable, for example {example}.")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any failure of the user's import is theirs to fix: one line, exit 2
        raise InitbenchError(f"Cannot import '{module_name}' for {what} '{spec}': {type(error).__name__}: {error}") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise InitbenchError(f"{what.capitalize()} '{spec}': module '{module_name}' has no attribute '{attribute}'.")
        target = getattr(target, part)
    if not callable(target):
        raise InitbenchError(f"{what.capitalize()} '{spec}' is not callable.")
    return target


def build_factory(spec: str, kwargs: dict[str, Any]) -> nn.Module:
    """Call the factory ``spec`` with ``kwargs``; it must return an ``nn.Module``."""
    factory = import_factory(spec)
    try:
        model = factory(**kwargs)
    except Exception as error:
        raise InitbenchError(f"Factory '{spec}' failed to build a model with {kwargs}: {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise InitbenchError(f"Factory '{spec}' returned a {type(model).__name__}, not a torch.nn.Module.")
    return model


#: The deepest network: a million layers' records alone take ~16 GB (``RECORD_BYTES_PER_RUN_LAYER``),
#: and a bound keeps ``[width] * depth`` from being asked for 10²⁰ entries.
MAX_DEPTH = 1_000_000
