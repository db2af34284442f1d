"""LSUV's fitting loop (Mishkin & Matas 2016): each weight layer of every stacked run rescaled to unit
output variance on a batch, layer by layer, with every rescale recorded.

The scheme itself (its orthonormal start and options) is :class:`~initbench.schemes.lsuv.LSUV`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initbench.core.hooks import HookSet
from initbench.engines.modules import StackedModules, first_floating, run_each
from initbench.nets.architectures import weight_layers
from initbench.schemes.lsuv import LSUV


@dataclass(frozen=True)
class LayerFit:
    """How one layer of one run was fitted.

    Attributes:
        module: the layer's dotted module path.
        iterations: the rescales applied (0: the orthonormal start was already within tol).
        variance: Var(output) after the last rescale (NaN: the module was never called).
        converged: whether |variance − 1| < tol.
        called: whether the module was called as a module in the forward pass.
    """

    module: str
    iterations: int
    variance: float
    converged: bool
    called: bool = True


#: Every LSUV run's layers in model order, by (scheme label, seed).
Fits = dict[tuple[str, int], list[LayerFit]]


#: What :meth:`OutputVariances.measure` gives a layer the forward pass never called: no variance is negative.
NOT_CALLED = -1.0


class _Measured(Exception):
    """Raised by a hook once every measured layer has returned: the rest of the forward pass is not needed."""


class OutputVariances(HookSet):
    """Forward hooks on the weight layers that measure Var(output) of the layers asked for.

    A context manager: the hooks are removed on exit, also when the model raises.

    Args:
        stack: the stacked runs whose called model (``stack.base``) holds ``modules``.
        modules: the weight layers, in model order.
    """

    def __init__(self, stack: StackedModules, modules: list[nn.Module]) -> None:
        self.stack = stack
        self.modules = modules
        self.wanted: list[int] = []
        self._found: dict[int, torch.Tensor] = {}
        super().__init__()

    def register(self) -> None:
        for index, module in enumerate(self.modules):
            self.keep(module.register_forward_hook(self._hook(index)))

    def _hook(self, index: int) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if index not in self.wanted or index in self._found:
                return
            found = first_floating(output)
            if found is None:
                return
            self._found[index] = found.to(torch.float64).var(correction=0)
            if len(self._found) == len(self.wanted):
                raise _Measured

        return hook

    def measure(self, layers: list[int], x: torch.Tensor) -> torch.Tensor:
        """Var(output) of each of ``layers`` for every run on its inputs ``x [runs, ...]``, ``[runs, len(layers)]``.

        :data:`NOT_CALLED` for a layer the forward pass never called.
        """
        self.wanted = layers

        def variances(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            self._found = {}
            try:
                torch.func.functional_call(self.stack.base, (params, buffers), (inputs,))
            except _Measured:
                pass
            missing = torch.tensor(NOT_CALLED, dtype=torch.float64, device=inputs.device)
            return torch.stack([self._found.get(layer, missing) for layer in layers])

        measured = run_each(self.stack, variances, x)
        self._found = {}  # under vmap these were batched tensors of a call that has ended
        return measured


def rescaled_weight(path: str, module: nn.Module) -> str:
    """The stacked-parameter name of the weight LSUV rescales in the module at ``path``: its first of two or more dimensions."""
    name = next(name for name, parameter in module.named_parameters(recurse=False) if parameter.dim() >= 2)
    return f"{path}.{name}" if path else name


def fit_stack(stack: StackedModules, x: torch.Tensor, tol: float, max_iter: int, keep: frozenset[str] = frozenset()) -> list[list[LayerFit]]:
    """Rescale every run of ``stack`` in place, layer by layer, on its inputs ``x [runs, ...]``.

    Returns each run's :class:`LayerFit` per weight layer, in model order. Each measurement is one
    forward pass of all runs; it also measures the next layer, whose starting variance that is once
    the current layer is done. The layers at the paths in ``keep`` (those an ``init.rules`` rule
    set) are left as drawn.
    """
    layers = [(path, module) for path, module in weight_layers(stack.base) if path not in keep]
    keys = [rescaled_weight(path, module) for path, module in layers]
    runs = len(stack.runs)
    iterations = torch.zeros(runs, len(layers), dtype=torch.long)
    final = torch.full((runs, len(layers)), NOT_CALLED, dtype=torch.float64)
    known: dict[int, torch.Tensor] = {}  # layer → each run's Var(output) for the parameters as they are now

    def measure(layer: int) -> None:
        watched = [layer, layer + 1] if layer + 1 < len(layers) else [layer]
        measured = outputs.measure(watched, x).cpu()  # the loop's bookkeeping lives on the CPU
        known.clear()
        known.update({index: measured[:, column] for column, index in enumerate(watched)})

    with torch.no_grad(), OutputVariances(stack, [module for _, module in layers]) as outputs:
        for layer, key in enumerate(keys):
            if layer not in known:
                measure(layer)
            while True:
                variance = known[layer]
                fixable = torch.isfinite(variance) & (variance > 0)
                active = fixable & ((variance - 1).abs() >= tol) & (iterations[:, layer] < max_iter)
                if not bool(active.any()):
                    break
                weight = stack.params[key]
                scale = torch.where(active, variance.rsqrt(), torch.ones_like(variance)).to(device=weight.device, dtype=weight.dtype)
                weight.mul_(scale.view(-1, *[1] * (weight.dim() - 1)))
                iterations[:, layer] += active.long()
                measure(layer)
            final[:, layer] = known[layer]
    called = final != NOT_CALLED
    final = torch.where(called, final, math.nan)
    return [
        [
            LayerFit(
                module=path,
                iterations=int(iterations[run, layer]),
                variance=float(final[run, layer]),
                converged=bool(abs(float(final[run, layer]) - 1) < tol),
                called=bool(called[run, layer]),
            )
            for layer, (path, _) in enumerate(layers)
        ]
        for run in range(runs)
    ]


def fit_lsuv_runs(stack: StackedModules, x: torch.Tensor, keep: frozenset[str] = frozenset()) -> Fits:
    """Fit, in ``stack``, every run whose scheme is LSUV, each on its own inputs ``x[run]``; other runs are left alone.

    Runs of one scheme label (the same options) are fitted together, on a stack of their own, so
    the fit costs nothing for the other schemes of a comparison. ``keep``: module paths an
    ``init.rules`` rule set, which LSUV leaves as the rule drew them.
    """
    groups: dict[str, list[int]] = {}
    for index, run in enumerate(stack.runs):
        if isinstance(run.scheme, LSUV):
            groups.setdefault(run.label, []).append(index)
    fits: Fits = {}
    for label, indices in groups.items():
        scheme = stack.runs[indices[0]].scheme
        assert isinstance(scheme, LSUV)
        chosen = stack.select(indices)
        per_run = fit_stack(chosen, x[indices], scheme.tol, scheme.max_iter, keep)
        with torch.no_grad():
            for key, value in stack.params.items():
                value[indices] = chosen.params[key]
        for index, layers in zip(indices, per_run, strict=True):
            fits[(label, stack.runs[index].seed)] = layers
    return fits


def subset_fits(fits: Fits, labels: list[str]) -> Fits:
    """The fits of the runs of ``labels`` only."""
    return {key: value for key, value in fits.items() if key[0] in labels}
