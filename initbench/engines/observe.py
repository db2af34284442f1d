"""One interface in front of both engines: a :class:`StackedNet` yields one observation per row.

A row is a layer of the plain MLP, a built-in block, or an observed call of a module. Each engine
reduces its tensors to the row's statistics as soon as it has them (:func:`activation_statistics`,
:func:`weight_statistics`, :func:`global_std`), so that one measurement loop can build the
results of either without knowing which ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from initbench.core.stats import layer_statistics, row_histograms, std_mean_float64
from initbench.engines.base import Run

HISTOGRAM_BINS = 50
#: Histograms use the first rows of the batch: 128 × width values draw the same shape as the whole
#: batch, at a fraction of the cost (a full-batch histogram per run and layer cost as much as the
#: layer's matmul).
HISTOGRAM_ROWS = 128

#: One (edges, counts) histogram of φ(h) per run.
Histograms = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class LayerObservation:
    """What one row observed, for every run.

    Attributes:
        label: the row's module path (``layers.3``, ``encoder.norm#2``).
        module_type: the observed module's class name.
        fan_in: that of the weight the row reports (None: a module without one).
        stats: float64 ``[runs]`` tensors: ``FORWARD_COLUMNS``, ``WEIGHT_COLUMNS`` and ``finite``,
            and ``centre_std`` for the cnn.
        histograms: each run's histogram of the row's output.
    """

    label: str
    module_type: str
    fan_in: int | None
    stats: dict[str, torch.Tensor]
    histograms: Histograms


@dataclass(frozen=True)
class GradientObservation:
    """One row's backpropagated gradients, for every run: the std of dL/dh (or dL/d(output) for a
    module) and of dL/dW, float64 ``[runs]`` (NaN where the row has no weight)."""

    row: int  # 0-based, in the order of the forward observations
    grad_std: torch.Tensor
    weight_grad_std: torch.Tensor


@dataclass
class NetNotes:
    """What a net knows about its runs besides the rows (the module backend's; the stacked engine's are all None).

    Attributes:
        one_at_a_time: why the module backend ran the runs one at a time instead of together.
        fits: how each LSUV run's layers were fitted (:mod:`initbench.engines.lsuv_fit`).
        init_rules: which ``init.rules`` set each module (summary.json's ``init_rules``).
        output_finite: per run, whether the model's own output was finite (a user's forward can
            compute past its last observed module).
    """

    one_at_a_time: str | None = None
    fits: dict[Any, Any] = field(default_factory=dict)  # lsuv_fit.Fits, which imports the module backend that imports this
    init_rules: dict[str, Any] | None = None
    output_finite: np.ndarray | None = None


class StackedNet(Protocol):
    """The runs' networks stacked, observed row by row: what the measurement loop reads."""

    runs: list[Run]

    def task(self, backward: bool) -> tuple[str, int]:
        """A description of the work for the progress bar, and how many steps it advances."""
        ...

    def forward(self, backward: bool, advance: Callable[[], None]) -> Iterator[LayerObservation]:
        """Every row's observation, in order; with ``backward``, keep what :meth:`backward` needs."""
        ...

    def backward(self, advance: Callable[[], None]) -> Iterator[GradientObservation]:
        """After :meth:`forward`: backpropagate the fixed random loss and yield each row's gradients, in any order."""
        ...

    def notes(self) -> NetNotes: ...


def activation_statistics(pre: torch.Tensor, post: torch.Tensor, saturated: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], Histograms]:
    """A row's :func:`~initbench.core.stats.layer_statistics` of ``pre`` and ``post`` ``[runs, batch, ...]``,
    and each run's histogram of the first ``HISTOGRAM_ROWS`` examples of ``post`` (``HISTOGRAM_BINS`` bins)."""
    stats = layer_statistics(pre, post, saturated)
    return stats, row_histograms(post[:, :HISTOGRAM_ROWS].flatten(1), HISTOGRAM_BINS, stats["finite"].tolist())


def weight_statistics(weight: torch.Tensor | None, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """``weight_std`` and ``weight_mean`` of each run's ``weight [runs, ...]``; NaN like ``like`` without one."""
    if weight is None:
        return {"weight_std": torch.full_like(like, float("nan")), "weight_mean": torch.full_like(like, float("nan"))}
    std, mean = std_mean_float64(weight.flatten(1))
    return {"weight_std": std, "weight_mean": mean}


def global_std(tensor: torch.Tensor) -> torch.Tensor:
    """Population std over everything but the run axis, in float64: ``[runs, ...]`` → ``[runs]``."""
    return torch.std(tensor.flatten(1).to(torch.float64), dim=1, correction=0)
