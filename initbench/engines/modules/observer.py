"""What the module backend observes, and the forward hooks that reduce each call to its statistics.

:class:`Observer` hooks every observed module (a context manager that always removes its hooks),
names each call by dotted module path, repeated calls numbered (``encoder.norm#2``), and reduces
the call's input and output to the row's statistics inside the hook: no call's tensors outlive
it. Under ``torch.func.vmap`` a hook sees one run's slice of a batched tensor; the statistics are
taken of the whole ``[runs, ...]`` tensor behind it (:func:`stacked_view`), the same tensor and so
the same numbers as if the runs' outputs had been stacked and reduced afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._C import _functorch

from initbench.core.hooks import HookSet
from initbench.core.registry import build_from_spec
from initbench.core.stats import std_mean_float64
from initbench.engines.observe import Histograms, activation_statistics
from initbench.nets.activations import ACTIVATIONS, Activation
from initbench.nets.architectures import ActivationModule, Block, ResidualBlock


@dataclass(frozen=True)
class ObservedModule:
    """A module whose output is one row of the statistics.

    Attributes:
        path: dotted module path.
        module: the module in the model that is called.
        pre_module: a submodule whose input is recorded as the row's pre-activation h (the
            built-in blocks' φ); None: the module's own input.
        weight: dotted name of the parameter reported as the row's weight, or None.
        gradient_at_pre: whether the row's gradient is dL/dh at the pre-activation (a built-in
            block, like the plain MLP's rows) rather than dL/d(output) (residual blocks, modules).
    """

    path: str
    module: nn.Module
    pre_module: nn.Module | None
    weight: str | None
    gradient_at_pre: bool = False


def observed_modules(model: nn.Module) -> list[ObservedModule]:
    """What to observe: a built-in net's blocks, or every leaf module of a user's model.

    Leaf modules are those without children, and those that own parameters directly
    (``nn.MultiheadAttention`` computes with its own weights and not through its ``out_proj``).
    """
    names = {module: name for name, module in model.named_modules()}
    blocks = [module for module in model.modules() if isinstance(module, (Block, ResidualBlock))]
    if blocks:
        observed = []
        for block in blocks:
            activations = [child for child in block.modules() if isinstance(child, ActivationModule)]
            weighted = next(child for child in block.modules() if isinstance(child, (nn.Linear, nn.Conv2d)))
            observed.append(ObservedModule(names[block], block, activations[-1], f"{names[weighted]}.weight", isinstance(block, Block)))
        return observed
    observed = []
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if next(module.children(), None) is None or own:
            weight = next((key for key, value in own.items() if value.dim() >= 2), None)
            observed.append(ObservedModule(name, module, None, None if weight is None else (f"{name}.{weight}" if name else weight)))
    return observed


def first_floating(value: Any) -> torch.Tensor | None:
    """The first floating-point tensor in a module's input or output (tuples: MultiheadAttention)."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_floating(item)
            if found is not None:
                return found
    return None


def vmap_level(tensor: torch.Tensor) -> int | None:
    """The vmap level ``tensor`` is batched at (its outermost wrapper), or None outside vmap."""
    return _functorch.maybe_get_level(tensor) if _functorch.is_batchedtensor(tensor) else None


def stacked_view(tensor: torch.Tensor, runs_level: int | None) -> torch.Tensor:
    """Every run's values ``[runs, ...]`` behind a hook's tensor: the tensor batched at the runs'
    vmap level ``runs_level``, its batch dimension moved first, or ``[1, ...]`` for a run called
    alone (``runs_level`` None).

    A model may call vmap itself: its levels wrap the runs' one, and their batch dimensions are
    the model's data, kept where they are. Ops on the plain tensor behind a vmapped one run
    eagerly, outside vmap's batching, which is what lets a hook reduce with numpy
    (:func:`~initbench.core.stats.std_mean_float64`).
    """
    while _functorch.is_batchedtensor(tensor):
        level, dimension = _functorch.maybe_get_level(tensor), _functorch.maybe_get_bdim(tensor)
        tensor = _functorch.get_unwrapped(tensor)
        if level == runs_level:
            return tensor.movedim(dimension, 0)
    return tensor.unsqueeze(0)


def saturation_rule(module: nn.Module, activation: Activation) -> Activation | None:
    """The activation whose saturation rule applies to ``module``'s outputs, if any."""
    if isinstance(module, (ActivationModule, Block, ResidualBlock)):
        return module.activation if isinstance(module, ActivationModule) else activation
    for torch_type, name in ((nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid")):
        if isinstance(module, torch_type):
            return build_from_spec(ACTIVATIONS, name)
    return None


@dataclass(frozen=True)
class RowStatistics:
    """How a hook reduces one call: the row statistics of the network's ``activation`` (its
    saturation rule), and with ``image_centre`` the std at the image's centre pixel (the cnn)."""

    activation: Activation

    image_centre: bool = False

    def __call__(self, item: ObservedModule, pre: torch.Tensor | None, post: torch.Tensor) -> tuple[dict[str, torch.Tensor], Histograms]:
        """Statistics ``[runs]`` and histograms of a call's ``pre`` (None: it has none) and ``post`` ``[runs, ...]``."""
        post = post.detach()
        rule = saturation_rule(item.module, self.activation)
        stats, histograms = activation_statistics(post if pre is None else pre.detach(), post, None if rule is None else rule.saturated(post))
        if pre is None:
            stats["pre_std"] = torch.full_like(stats["std"], float("nan"))
        if self.image_centre:
            size = post.shape[-1]
            stats["centre_std"], _ = std_mean_float64(post[..., size // 2, size // 2].flatten(1))
        return stats, histograms


@dataclass
class Call:
    """One call of an observed module: its row label, the module, the shape (one run's) and dtype
    of the tensor its gradient is taken at, and its statistics (None: not reduced)."""

    label: str
    observed: ObservedModule
    gradient_shape: tuple[int, ...]
    dtype: torch.dtype
    stats: dict[str, torch.Tensor] | None = None
    histograms: Histograms | None = None
    #: Whether the call ran inside a vmap of the model's own (its tensor batched at another level than the runs').
    inside_model_vmap: bool = False


class Observer(HookSet):
    """Forward hooks on the observed modules, recording every call in order.

    Use as a context manager: the hooks are removed on exit, also when the model raises. With
    ``statistics``, each call is reduced to its row's statistics in the hook. With
    ``perturbations`` set (one tensor per recorded call, in call order), each recorded output (or
    pre-activation, for rows whose gradient is taken there) is replaced by itself + perturbation,
    so that d(loss)/d(perturbation) is d(loss)/d(that tensor); nothing is reduced then.
    """

    def __init__(self, observed: list[ObservedModule], statistics: Callable[..., tuple[dict[str, torch.Tensor], Histograms]] | None = None) -> None:
        self.observed = observed
        self.statistics = statistics
        self.calls: list[Call] = []
        self.perturbations: list[torch.Tensor] | None = None
        #: The vmap level the runs are batched at in the current pass (None: one run at a time).
        self.runs_level: int | None = None
        self._pre: dict[int, torch.Tensor] = {}  # a block's φ input, from its pre-hook until the block returns
        super().__init__()

    def register(self) -> None:
        for index, item in enumerate(self.observed):
            self.keep(item.module.register_forward_hook(self._hook(index)))
            if item.pre_module is not None:
                self.keep(item.pre_module.register_forward_pre_hook(self._pre_hook(index)))

    def reset(self, perturbations: list[torch.Tensor] | None = None) -> None:
        self.calls, self._pre, self.perturbations = [], {}, perturbations

    def _pre_hook(self, index: int) -> Any:
        item = self.observed[index]

        def hook(module: nn.Module, inputs: Any) -> Any:
            found = first_floating(inputs)
            if found is None:
                return None
            if self.perturbations is not None and item.gradient_at_pre:
                # This row's call is appended when its module returns, so it is the next one.
                found = found + self.perturbations[len(self.calls)]
                self._pre[index] = found
                return (found, *inputs[1:])
            self._pre[index] = found
            return None

        return hook

    def _hook(self, index: int) -> Any:
        item = self.observed[index]

        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            post = first_floating(output)
            if post is None:
                return None
            pre = self._pre.pop(index, None) if item.pre_module is not None else first_floating(inputs)
            repeat = sum(call.observed is item for call in self.calls)
            label = item.path if repeat == 0 else f"{item.path}#{repeat + 1}"
            at = pre if item.gradient_at_pre and pre is not None else post
            call = Call(label, item, tuple(at.shape), at.dtype, inside_model_vmap=vmap_level(post) not in (None, self.runs_level))
            replaced = None
            if self.perturbations is not None:
                if not item.gradient_at_pre:
                    post = post + self.perturbations[len(self.calls)]
                    replaced = post if isinstance(output, torch.Tensor) else (post, *output[1:])
            elif self.statistics is not None:
                call.stats, call.histograms = self.statistics(item, None if pre is None else stacked_view(pre, self.runs_level), stacked_view(post, self.runs_level))
            self.calls.append(call)
            return replaced

        return hook
