"""The runs' models stacked: one copy of the model called on each run's parameters.

The runs' parameters are stacked (``torch.func.stack_module_state``) and one copy of the model is
called on each run's slice with ``torch.func.functional_call``: all runs together under
``torch.func.vmap`` where the model allows it, one at a time where it does not, with the reason
recorded (BatchNorm in train mode updates its running statistics in place, and dropout draws
random masks; vmap can batch neither the way a run alone computes them). Both give each run's own
numbers (tested against running each model alone). The per-run models are not kept: the stack
holds every run's tensors, and remembers only each run's own names for them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from initbench.core.runtime import derive_seed, unmap_large_blocks_on_free
from initbench.engines.base import Run
from initbench.engines.modules.observer import first_floating
from initbench.engines.training import per_run_loss
from initbench.schemes.base import own_state_dict


def vmap_obstacle(model: nn.Module) -> str | None:
    """Why ``model`` can't run its runs together under vmap with each run's own numbers, or None."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training and module.track_running_stats:
            return f"{name or 'the model'} ({type(module).__name__}) updates its running statistics in place in train mode"
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.training and module.p > 0:
            return f"{name or 'the model'} ({type(module).__name__}) draws random masks in train mode"
    return None


def own_names(model: nn.Module) -> dict[str, str]:
    """``model``'s own state_dict keys (:func:`~initbench.schemes.base.own_state_dict`, what the
    ``checkpoint`` scheme loads) → the parameter or buffer name the stack holds that tensor under
    (tied tensors have one stacked name)."""
    names = {id(tensor): name for name, tensor in (*model.named_parameters(), *model.named_buffers())}
    return {key: names[id(tensor)] for key, tensor in own_state_dict(model, keep_vars=True).items()}


class StackedModules:
    """The runs' models stacked: one model called on each run's parameters.

    Args:
        models: one built, initialized model per run (in ``runs``' order), on the CPU; each is
            copied into the stack as it comes and then dropped (the stack keeps one copy of the
            model to call, and each run's own names for its tensors). A generator of them keeps
            only one model beside the stack at a time.
        runs: the runs, for their seeds (dropout draws from a stream of each run's seed).
        device: where to compute.
    """

    def __init__(self, models: Iterable[nn.Module], runs: list[Run], device: torch.device) -> None:
        # Before the models are built (``models`` may be a generator): the blocks that building,
        # stacking and every observed call free go back to the system, not to a heap that only grows.
        unmap_large_blocks_on_free()
        self.runs, self.device = runs, device
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        #: Each run's own state_dict keys → stacked names (:meth:`run_state_dict`).
        self.run_names: list[dict[str, str]] = []
        requires_grad: dict[str, bool] = {}
        for index, model in enumerate(models):
            model = model.to(device)
            if index == 0:
                # The called model needs structure, not values (functional_call swaps in every
                # parameter and buffer), so its tensors go to the meta device: no third copy.
                self.base = copy.deepcopy(model).to("meta")
            self._take(index, model, requires_grad)
        if len(self.run_names) != len(runs):
            raise ValueError(f"{len(self.run_names)} models for {len(runs)} runs")
        # As torch.func.stack_module_state: stacked parameters are leaves that require grad where every run's did.
        for name, _ in self.base.named_parameters():
            self.params[name].requires_grad_(requires_grad[name])
        #: None when the runs go through vmap together, else why they go one at a time.
        self.one_at_a_time = vmap_obstacle(self.base)

    def _take(self, index: int, model: nn.Module, requires_grad: dict[str, bool]) -> None:
        """Copy run ``index``'s ``model`` into its slice of the stack (allocated by the first run's),
        and whether its parameters require grad into ``requires_grad``."""
        with torch.no_grad():
            for stacked, named in ((self.params, model.named_parameters()), (self.buffers, model.named_buffers())):
                for name, tensor in named:
                    if index == 0:
                        stacked[name] = torch.empty((len(self.runs), *tensor.shape), dtype=tensor.dtype, device=tensor.device)
                    stacked[name][index].copy_(tensor)
                    if stacked is self.params:
                        requires_grad[name] = requires_grad.get(name, True) and tensor.requires_grad
        self.run_names.append(own_names(model))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Every run's output for its inputs ``x [runs, ...]``, ``[runs, ...]`` (differentiable in :attr:`params`)."""
        return run_each(self, self.single, x)

    def parameters(self) -> Iterator[torch.Tensor]:
        """The stacked parameters ``[runs, ...]``, leaves an optimizer can step."""
        return iter(self.params.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stacked parameters and buffers (BatchNorm's running statistics), for a checkpoint."""
        return {**{f"params.{k}": v.detach() for k, v in self.params.items()}, **{f"buffers.{k}": v for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from :meth:`state_dict`'s ``state``, in place (the optimizer holds these tensors)."""
        with torch.no_grad():
            for key, value in self.params.items():
                value.copy_(state[f"params.{key}"])
            for key, value in self.buffers.items():
                value.copy_(state[f"buffers.{key}"])

    def run_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Run ``index``'s current tensors, named as its own model's ``state_dict()`` names them (what
        the ``checkpoint`` scheme loads), without the structure other runs' schemes added inert."""
        stacked = {**self.params, **self.buffers}
        return {key: stacked[name][index].detach().cpu().clone() for key, name in self.run_names[index].items()}

    def run_model(self, index: int) -> nn.Module:
        """A model of its own holding run ``index``'s current tensors (a copy of the called model), to run it alone."""
        model = copy.deepcopy(self.base).to_empty(device=self.device)
        stacked = {**self.params, **self.buffers}
        with torch.no_grad():
            for name, tensor in (*model.named_parameters(), *model.named_buffers()):
                tensor.copy_(stacked[name][index])
        return model

    def select(self, indices: list[int]) -> StackedModules:
        """The runs at ``indices`` as a stack of their own: copies of their parameters and buffers, the same called model."""
        chosen = copy.copy(self)
        chosen.runs = [self.runs[index] for index in indices]
        chosen.run_names = [self.run_names[index] for index in indices]
        with torch.no_grad():
            chosen.params = {key: value[indices] for key, value in self.params.items()}
            chosen.buffers = {key: value[indices] for key, value in self.buffers.items()}
        return chosen

    def losses(self, x: torch.Tensor, y: torch.Tensor, task: str) -> tuple[torch.Tensor, Callable[[], None]]:
        """Each run's loss on ``(x, y)``, ``[runs]``, and a function that sets the parameters' gradients (autograd)."""
        with torch.enable_grad():
            losses = per_run_loss(self(x), y, task)
            # Each run's loss depends on its own slice only, so d(Σ losses)/dθ_r = dL_r/dθ_r.
            total = losses.sum()

        def set_gradients() -> None:
            for parameter, gradient in zip(self.params.values(), torch.autograd.grad(total, list(self.params.values())), strict=True):
                parameter.grad = gradient

        return losses.detach(), set_gradients

    def single(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """One run's output: the called model on ``params`` and ``buffers`` (its first floating-point output)."""
        output = torch.func.functional_call(self.base, (params, buffers), (x,))
        found = first_floating(output)
        if found is None:
            raise TypeError(f"the model returned {type(output).__name__}, not a floating-point tensor")
        return found


def run_each(stack: StackedModules, function: Any, inputs: Any) -> Any:
    """``function(params, buffers, inputs)`` for every run: under vmap, or one run at a time.

    Returns the function's outputs stacked on a leading run axis either way.
    """
    if stack.one_at_a_time is None:
        try:
            return torch.func.vmap(function, randomness="error")(stack.params, stack.buffers, inputs)
        except Exception as error:  # an op vmap cannot batch: fall back, and say why
            stack.one_at_a_time = f"vmap failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    results = []
    for index, run in enumerate(stack.runs):
        # Random modules (dropout) draw from a stream of the run's own seed, whatever runs beside it.
        with torch.random.fork_rng(devices=[stack.device] if stack.device.type == "cuda" else []):
            torch.manual_seed(derive_seed(run.seed, "module-randomness"))
            params, buffers, run_inputs = pytree.tree_map(lambda tensor, i=index: tensor[i], (stack.params, stack.buffers, inputs))
            results.append(function(params, buffers, run_inputs))
    return pytree.tree_map(lambda *items: torch.stack(items), *results)
