"""The module backend as a :class:`~initbench.engines.observe.StackedNet`: LSUV's fit, one observed
forward pass (each call reduced in its hook), and the gradient pass reduced call by call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from initbench.engines.lsuv_fit import Fits, fit_lsuv_runs
from initbench.engines.modules import ObservedPass, RowStatistics, StackedModules, loss_directions, observe, observe_gradients
from initbench.engines.observe import GradientObservation, LayerObservation, NetNotes, global_std, weight_statistics
from initbench.nets.architectures import fans


class ModuleNet:
    """Every run's module (built-in net or user factory), observed call by call.

    Args:
        stack: the runs' drawn, stacked models (:func:`~initbench.engines.modules.build_stack`).
        x: each run's inputs ``[runs, ...]``.
        statistics: how each call is reduced (the net's activation, and whether it is a cnn).
        description: what runs, for the progress bar.
        keep: module paths LSUV leaves as drawn (those an ``init.rules`` rule set).
        init_rules: which rule set each module, passed through to the notes.
        failed: turns an error of the model on ``x`` into the one the user sees (None: raise it).
    """

    def __init__(
        self, stack: StackedModules, x: torch.Tensor, statistics: RowStatistics, description: str, keep: frozenset[str] = frozenset(),
        init_rules: dict[str, Any] | None = None, failed: Callable[[Exception], Exception] | None = None,
    ) -> None:
        self.stack, self.x, self.statistics = stack, x, statistics
        self.runs = stack.runs
        self.description, self.keep, self.init_rules, self.failed = description, keep, init_rules, failed
        self.fits: Fits = {}
        self._pass: ObservedPass | None = None

    def task(self, backward: bool) -> tuple[str, int]:
        return f"{'forward + backward' if backward else 'forward'}, {len(self.runs)} runs of {self.description}", 2 if backward else 1

    def forward(self, backward: bool, advance: Callable[[], None]) -> Iterator[LayerObservation]:
        try:
            self.fits = fit_lsuv_runs(self.stack, self.x, self.keep)  # LSUV rescales on the batch it is then measured on
            self._pass = observe(self.stack, self.x, self.statistics)
        except Exception as error:  # a user's model that can't take the inputs asked for: say so in one line
            if self.failed is None:
                raise
            raise self.failed(error) from None
        advance()
        for call, stats, histograms in zip(self._pass.calls, self._pass.stats, self._pass.histograms, strict=True):
            weight = None if call.observed.weight is None else self.stack.params[call.observed.weight].detach()
            stats.update(weight_statistics(weight, stats["std"]))
            fan_in = None if weight is None else fans(tuple(weight.shape[1:]))[0]
            yield LayerObservation(call.label, type(call.observed.module).__name__, fan_in, stats, histograms)

    def backward(self, advance: Callable[[], None]) -> Iterator[GradientObservation]:
        assert self._pass is not None, "forward first"
        calls = self._pass.calls
        grads, weight_grads = observe_gradients(self.stack, self.x, calls, loss_directions(self.runs, self._pass.output))
        advance()
        for row, call in enumerate(calls):
            grad_std = global_std(grads[row])
            grads[row] = grads[row].new_empty(0)  # reduced: let it go before the next row's
            name = call.observed.weight
            yield GradientObservation(row, grad_std, torch.full_like(grad_std, float("nan")) if name is None else global_std(weight_grads[name]))

    def notes(self) -> NetNotes:
        output_finite = None if self._pass is None else torch.isfinite(self._pass.output.flatten(1)).all(dim=1).cpu().numpy()
        return NetNotes(self.stack.one_at_a_time, self.fits, self.init_rules, output_finite)
