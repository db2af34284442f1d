"""LSUV, layer-sequential unit-variance init (Mishkin & Matas 2016, "All you need is a good init").

A data-dependent scheme: it draws an orthonormal start like any scheme, then needs a batch to
rescale each layer, so its runs go through the module backend, where the stacked models and the
batch both exist (:meth:`~initbench.config.Config.uses_fast_engine` is False for it).

1. **Start.** Every weight of two or more dimensions is ``torch.nn.init.orthogonal_`` from the run's
   generator (a conv weight ``[out, in, k, k]`` is orthonormal as ``[out, in·k²]``); biases follow
   ``init.bias`` (zeros by default, as in the paper), normalization layers get 1 and 0.
2. **Layers.** The modules that own a weight of two or more dimensions, in model order
   (:func:`~initbench.architectures.weight_layers`: Linear, convolutions, Embedding,
   MultiheadAttention through its in-projection). What is measured is the module's own output, the
   pre-activation, on its first call; what is rescaled is its first weight of two or more dimensions.
3. **Rescale.** For each layer in turn, with v = Var(output) over every entry of the output (batch,
   features, positions; population variance, in float64)::

       while |v − 1| ≥ tol and fewer than max_iter rescales:   W ← W / √v,  measure v again

   "Unit variance within tol" is |v − 1| < tol. A layer linear in its weight and without bias gets
   there in one rescale; biases and attention can take more. A layer still outside after
   ``max_iter`` rescales, or whose output has zero or non-finite variance, is recorded as not
   converged (summary.json and summary.md say which), and the next layer is fitted all the same.
   A weight layer that is never called as a module (MultiheadAttention's ``out_proj``) keeps its
   orthonormal start and is recorded as not called.
4. **Batch.** The forward and gradients experiments fit each run on its own input batch
   (:func:`~initbench.module_backend.module_inputs`, the batch they then measure); the train
   experiment fits on the training set's first ``train.batch_size`` examples (all of it for
   full-batch gradient descent), the same for every run.

All runs with the same LSUV options are fitted together: each measurement is one forward pass of the
stacked parameters (under ``torch.func.vmap`` where the model allows it, one run at a time where it
does not, as :class:`~initbench.module_backend.StackedModules` runs them), cut short once the
measured layers have returned, and each run is rescaled by its own measured variance, so a run fitted
beside others equals it fitted alone. The model runs in its run's mode (train mode unless
``model.eval``: BatchNorm then normalizes over the batch); the fit leaves buffers (BatchNorm's
running statistics) as they were.

LSUV has no mean-field prediction: its per-layer variance is set by the data, not by the fans.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field
from rich.text import Text
from torch import nn

from initbench.hooks import HookSet
from initbench.schemes import SCHEMES, InitScheme

if TYPE_CHECKING:
    from initbench.architectures import ParamContext
    from initbench.engine import Run
    from initbench.module_backend import StackedModules


@SCHEMES.register("lsuv")
class LSUV(InitScheme):
    r"""Mishkin & Matas (2016) LSUV: orthonormal weights, then each layer rescaled to unit output variance on a batch.

    From "All you need is a good init" (Mishkin, D. and Matas, J., 2016). Every weight starts as
    ``torch.nn.init.orthogonal_`` draws it; then, for each module with a weight of two or more
    dimensions in model order, with v the variance of the module's own output on the batch,

    .. math::
        W \leftarrow W / \sqrt{v} \quad \text{until} \quad |v - 1| < \text{tol}

    at most ``max_iter`` times (:func:`fit_stack`, on every seed of a stack at once). A layer
    still outside tol is recorded in summary.json, not hidden.

    Also known as layer-sequential unit-variance init; the PyPI package ``lsuv``
    (``lsuv_with_singlebatch``, a test-only reference).

    Args:
        tol: the tolerance on |Var(output) − 1| (default 0.1, the paper's).
        max_iter: the most rescales per layer (default 10).

    Examples:
        >>> LSUV(tol=0.01).spec()
        'lsuv:tol=0.01'
    """

    formula = "W = Q (orthonormal); then layer by layer W ← W/√Var(output) until |Var(output) − 1| < tol (at most max_iter times)"
    fills_bias = False
    no_bias_reason = "rescales a layer's weight to its output's variance; it has no rule for a bias"
    needs_data = True
    tol: float = Field(default=0.1, gt=0.0)
    max_iter: int = Field(default=10, ge=1)

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        torch.nn.init.orthogonal_(tensor, generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None  # set by the batch, layer by layer: nothing to predict from the fans


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
        from initbench.module_backend import first_floating  # deferred: the backend imports the schemes

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
        from initbench.module_backend import run_each

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
    from initbench.architectures import weight_layers

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


@dataclass
class FitReport:
    """What a run reports about its LSUV fits.

    Attributes:
        entries: summary.json's ``lsuv`` entry of each LSUV scheme label: its options and batch,
            each layer's median rescales over seeds, the layers that did not converge or were not
            called, and per seed each layer's :class:`LayerFit`.
        paragraphs: summary.md's paragraphs about them.
        warnings: for the terminal, one line per scheme whose layers did not all converge.
    """

    entries: dict[str, dict[str, Any]]
    paragraphs: list[str]
    warnings: list[Text]


def layer_record(layer: LayerFit) -> dict[str, Any]:
    """A layer's fit for summary.json; the variance of a layer never called is null."""
    return {**asdict(layer), "variance": layer.variance if layer.called else None}


def report_fits(fits: Fits, runs: list[Run], batch: str) -> FitReport:
    """The :class:`FitReport` of ``runs``' LSUV fits.

    Args:
        fits: the fits of ``runs``' LSUV runs.
        runs: the runs, for their schemes' options and their order.
        batch: which batch the runs were fitted on, in words.
    """
    report = FitReport({}, [], [])
    for label in dict.fromkeys(run.label for run in runs):
        seeds = [run.seed for run in runs if run.label == label and (label, run.seed) in fits]
        if not seeds:
            continue
        scheme = next(run.scheme for run in runs if run.label == label)
        assert isinstance(scheme, LSUV)
        first = fits[(label, seeds[0])]
        counts = [[fits[(label, seed)][layer].iterations for seed in seeds] for layer in range(len(first))]
        failures = [{"seed": seed, **layer_record(layer)} for seed in seeds for layer in fits[(label, seed)] if layer.called and not layer.converged]
        report.entries[label] = {
            "tol": scheme.tol,
            "max_iter": scheme.max_iter,
            "batch": batch,
            "modules": [layer.module for layer in first],
            "iterations_median_by_layer": [float(statistics.median(row)) for row in counts],
            "not_converged": failures,
            "not_called": [layer.module for layer in first if not layer.called],
            "per_seed": [{"seed": seed, "layers": [layer_record(layer) for layer in fits[(label, seed)]]} for seed in seeds],
        }
        text = (
            f"LSUV '{label}' (|Var(output) − 1| < {scheme.tol}, at most {scheme.max_iter} rescales a layer), fitted on {batch}: "
            f"{len(first)} weight layers, {sum(map(sum, counts)) / len(seeds):g} rescales a run on average (per layer and seed in summary.json)."
        )
        if failures:
            listed = "; ".join(f"seed {item['seed']} {item['module'] or 'the model'}: Var {item['variance']:.4g} after {item['iterations']}" for item in failures[:10])
            more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
            text += f" **Not converged** ({len(failures)} layer fits): {listed}{more}."
            report.warnings.append(
                Text(f"LSUV '{label}': {len(failures)} layer fits did not reach |Var(output) − 1| < {scheme.tol} in {scheme.max_iter} rescales (summary.json lists them).", style="yellow")
            )
        report.paragraphs.append(text)
    return report
