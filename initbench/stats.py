"""Pure statistics of activations, and the verdict on how a signal fared with depth.

Everything is accumulated in float64, so float32 activations that are huge but finite (up to
~3e38) still give a finite std; a layer with any non-finite activation gets NaN statistics, recorded as
a result rather than raised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

#: Per-layer statistics of the forward experiment, in ``layer_stats.csv`` column order.
FORWARD_COLUMNS = ("mean", "std", "pre_std", "frac_saturated", "frac_zero")

#: Verdict thresholds, relative to the N(0, 1) input (std 1). See :func:`verdict`.
EXPLODING_STD = 10.0
VANISHING_STD = 0.1
SATURATED_FRACTION = 0.5


def std_mean_float64(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Population std and mean of each row of ``values [runs, n]``, accumulated in float64.

    torch's CPU reductions of float32 already accumulate in float64 (``at::acc_type``), so there
    the float32 tensor is reduced as it is, without a float64 copy: that copy cost more than the
    matmul's own share of a layer. CUDA accumulates float32 in float32, so there we copy.
    """
    if values.device.type != "cpu":
        values = values.to(torch.float64)
    std, mean = torch.std_mean(values, dim=1, correction=0)
    return std.to(torch.float64), mean.to(torch.float64)


def layer_statistics(pre: torch.Tensor, post: torch.Tensor, saturated: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Statistics of one layer for every run, each a float64 tensor ``[runs]``.

    Args:
        pre: pre-activations h, ``[runs, batch, width]``.
        post: post-activations φ(h), same shape.
        saturated: boolean mask of saturated outputs (same shape), or None for "never".

    Returns:
        ``mean`` and ``std`` of φ(h) over all batch×width elements (population std, ddof 0),
        ``pre_std`` of h, ``frac_saturated``, ``frac_zero`` (exact zeros), and ``finite`` (bool).
        Runs whose h or φ(h) hold a non-finite value get NaN for every statistic.
    """
    std, mean = std_mean_float64(post.flatten(1))
    pre_std, pre_mean = std_mean_float64(pre.flatten(1))
    # A mean accumulated in float64 is non-finite exactly when the values hold an inf or a NaN
    # (a float64 sum of float32 values cannot overflow), which saves an isfinite pass.
    finite = torch.isfinite(mean) & torch.isfinite(pre_mean)
    count = post[0].numel()
    # Summing the boolean mask as int32 is much faster than count_nonzero, which widens to int64.
    counter = torch.int32 if count < 2**31 else torch.int64
    frac_zero = (post.flatten(1) == 0).sum(dim=1, dtype=counter).to(torch.float64) / count
    if saturated is None:
        frac_saturated = torch.zeros_like(std)
    else:
        frac_saturated = saturated.flatten(1).sum(dim=1, dtype=counter).to(torch.float64) / count
    stats = {"mean": mean, "std": std, "pre_std": pre_std, "frac_saturated": frac_saturated, "frac_zero": frac_zero}
    nan = torch.tensor(math.nan, dtype=torch.float64, device=std.device)
    stats = {key: torch.where(finite, value, nan) for key, value in stats.items()}
    stats["finite"] = finite
    return stats


def histogram(values: torch.Tensor, bins: int, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, counts)`` of the finite entries of ``values``, over their own range.

    Args:
        values: any tensor; it is flattened.
        bins: number of equal-width bins.
        finite: whether ``values`` is known to be all finite; if not, non-finite entries are dropped.

    A constant tensor (all zeros, say) gets one unit-wide range around its value, so the spike is
    visible; a tensor with no finite entry gets NaN edges and zero counts.
    """
    flat = values.flatten()
    if not finite:
        flat = flat[torch.isfinite(flat)]
    if flat.numel() == 0:
        return np.full(bins + 1, math.nan), np.zeros(bins, dtype=np.int64)
    if flat.device.type == "cpu":
        # numpy's histogram is ~4× faster here than torch.histc, whose threads only contend. In
        # float64, because vanishing activations (1e-40) leave float32 no room for 50 distinct edges.
        counts, edges = np.histogram(flat.numpy().astype(np.float64), bins=bins)  # a constant gets [v − 0.5, v + 0.5]
        return edges, counts.astype(np.int64)
    low, high = (bound.item() for bound in torch.aminmax(flat))
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts = torch.histc(flat, bins=bins, min=low, max=high)
    return np.linspace(low, high, bins + 1), counts.cpu().numpy().astype(np.int64)


def first_nonfinite_layer(finite_by_layer: Sequence[bool]) -> int | None:
    """The 1-indexed layer where activations first became non-finite, or None if they never did."""
    for layer, finite in enumerate(finite_by_layer, start=1):
        if not finite:
            return layer
    return None


def median_layer(layers: Sequence[int | None]) -> int | None:
    """Lower median over seeds of a layer (or step) where None means "never" (beyond every one).

    With None ranked last, the median is None exactly when more than half the seeds never got there
    (``[3, None]`` gives 3).
    """
    ranked = sorted(layers, key=lambda layer: math.inf if layer is None else layer)
    middle = ranked[(len(ranked) - 1) // 2]
    return middle


def verdict(std_last: float, frac_saturated_last: float, first_nonfinite: int | None) -> str:
    """How the signal fared by the last layer, judged against the N(0, 1) input's std of 1.

    In order: ``exploding`` if any layer became non-finite or the last std exceeds
    ``EXPLODING_STD`` (10); ``dead`` if the last layer's outputs are all identical (std 0);
    ``saturated`` if more than ``SATURATED_FRACTION`` (half) of them are saturated; ``vanishing``
    if the last std is below ``VANISHING_STD`` (0.1); otherwise ``stable``.
    """
    if first_nonfinite is not None or not math.isfinite(std_last) or std_last > EXPLODING_STD:
        return "exploding"
    if std_last == 0.0:
        return "dead"
    if frac_saturated_last > SATURATED_FRACTION:
        return "saturated"
    if std_last < VANISHING_STD:
        return "vanishing"
    return "stable"


def gradient_verdict(grad_std_first: float, grad_std_last: float) -> str:
    """How gradients fare from the last layer back to layer 1.

    ``exploding`` if either std is non-finite or layer 1's is more than ``EXPLODING_STD`` (10)
    times the last layer's; ``dead`` if the last layer's is exactly 0; ``vanishing`` below
    ``VANISHING_STD`` (0.1) times; otherwise ``stable``.
    """
    if not (math.isfinite(grad_std_first) and math.isfinite(grad_std_last)):
        return "exploding"
    if grad_std_last == 0.0:
        return "dead"
    ratio = grad_std_first / grad_std_last
    if ratio > EXPLODING_STD:
        return "exploding"
    if ratio < VANISHING_STD:
        return "vanishing"
    return "stable"
