"""LSUV, layer-sequential unit-variance init (Mishkin & Matas 2016, "All you need is a good init").

A data-dependent scheme: it draws an orthonormal start like any scheme, then needs a batch to
rescale each layer, so its runs go through the module backend, where the stacked models and the
batch both exist (:func:`initbench.engines.choice.select` picks the module backend for it).

1. **Start.** Every weight of two or more dimensions is ``torch.nn.init.orthogonal_`` from the run's
   generator (a conv weight ``[out, in, k, k]`` is orthonormal as ``[out, in·k²]``); biases follow
   ``init.bias`` (zeros by default, as in the paper), normalization layers get 1 and 0.
2. **Layers.** The modules that own a weight of two or more dimensions, in model order
   (:func:`~initbench.nets.architectures.weight_layers`: Linear, convolutions, Embedding,
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
   (:func:`~initbench.engines.modules.module_inputs`, the batch they then measure); the train
   experiment fits on the training set's first ``train.batch_size`` examples (all of it for
   full-batch gradient descent), the same for every run.

All runs with the same LSUV options are fitted together: each measurement is one forward pass of the
stacked parameters (under ``torch.func.vmap`` where the model allows it, one run at a time where it
does not, as :class:`~initbench.engines.modules.StackedModules` runs them), cut short once the
measured layers have returned, and each run is rescaled by its own measured variance, so a run fitted
beside others equals it fitted alone. The model runs in its run's mode (train mode unless
``model.eval``: BatchNorm then normalizes over the batch); the fit leaves buffers (BatchNorm's
running statistics) as they were.

LSUV has no mean-field prediction: its per-layer variance is set by the data, not by the fans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import Field

from initbench.schemes.base import SCHEMES, InitScheme

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext


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
