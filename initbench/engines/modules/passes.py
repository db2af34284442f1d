"""One pass of every run through the stacked model, observed: each call's statistics, then, when
asked, each call's gradient.

Gradients use the same calls: each observed output gets a zero tensor added, and the gradient of
the loss with respect to that zero is dL/d(output) (``torch.func.grad``), which composes with vmap
where full backward hooks do not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from initbench.core.errors import InitbenchError
from initbench.engines.modules.observer import Call, Observer, RowStatistics, observed_modules, vmap_level
from initbench.engines.modules.stack import StackedModules, run_each
from initbench.engines.observe import Histograms


@contextmanager
def observing(stack: StackedModules, statistics: RowStatistics | None = None) -> Iterator[Observer]:
    """An :class:`Observer` on ``stack``'s called model, removed on exit whatever happens."""
    with Observer(observed_modules(stack.base), statistics) as observer:
        yield observer


@dataclass
class ObservedPass:
    """One forward pass of every run: each recorded call (in call order) with its statistics
    ``[runs]`` and each run's histogram, and the model's output ``[runs, ...]``."""

    calls: list[Call]
    stats: list[dict[str, torch.Tensor]]
    histograms: list[Histograms]
    output: torch.Tensor

    @property
    def labels(self) -> list[str]:
        return [call.label for call in self.calls]


def observe(stack: StackedModules, x: torch.Tensor, statistics: RowStatistics) -> ObservedPass:
    """Run ``x [runs, ...]`` through every run's model, reducing each observed call to ``statistics``.

    Under vmap the hooks see all runs at once; one run at a time, each run's pass gives its own
    row of every call's statistics, joined here in run order.
    """
    with observing(stack, statistics) as observer:
        passes: list[list[Call]] = []

        def traced(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            observer.reset()
            observer.runs_level = vmap_level(inputs)
            output = stack.single(params, buffers, inputs)
            passes.append(observer.calls)
            return output

        output = run_each(stack, traced, x)
    # A vmap that failed part-way falls back to one run at a time: only the passes that finished count.
    passes = passes[-1:] if stack.one_at_a_time is None else passes[-len(stack.runs) :]
    calls = passes[0]
    stats = [{name: torch.cat([calls_of_run[index].stats[name] for calls_of_run in passes]) for name in calls[index].stats} for index in range(len(calls))]  # type: ignore[index, union-attr]
    histograms = [[histogram for calls_of_run in passes for histogram in calls_of_run[index].histograms] for index in range(len(calls))]  # type: ignore[union-attr]
    return ObservedPass(calls, stats, histograms, output)


def observe_gradients(stack: StackedModules, x: torch.Tensor, calls: list[Call], loss_direction: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Backpropagate L = Σ output ⊙ r / √batch, with ``loss_direction`` r (the output's shape), through every run.

    Returns dL/d(output) of each of ``calls`` (those :func:`observe` recorded; dL/dh for built-in
    blocks), ``[runs, ...]``, and dL/dθ of every parameter by name.
    """
    inside = [call.label for call in calls if call.inside_model_vmap]
    if inside:
        # The perturbation that reads dL/dh off a call is drawn outside the model, without the
        # batch dimension of the model's own vmap: it would sum the gradient over that dimension.
        raise InitbenchError(
            f"The model calls vmap itself ({', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''} run inside it): its per-module gradients cannot be measured.",
            hint="Use --experiment forward, which measures these modules' activations.",
        )
    batch = x.shape[1]
    with observing(stack) as observer:

        def loss(params: dict[str, torch.Tensor], perturbations: list[torch.Tensor], buffers: dict[str, torch.Tensor], inputs: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            observer.reset(perturbations)
            return (stack.single(params, buffers, inputs) * r).sum() / math.sqrt(batch)

        gradient = torch.func.grad(loss, argnums=(0, 1))
        zeros = [torch.zeros((len(stack.runs), *call.gradient_shape), dtype=call.dtype, device=x.device) for call in calls]
        weight_grads, grads = run_each(stack, lambda p, b, i: gradient(p, i[0], b, i[1], i[2]), (zeros, x, loss_direction))
    return grads, weight_grads
