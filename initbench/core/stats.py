"""Pure statistics of activations, and the verdict on how a signal fared with depth.

Everything is accumulated in float64, so float32 activations that are huge but finite (up to
~3e38) still give a finite std; a layer with any non-finite activation gets NaN statistics, recorded as
a result rather than raised.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

#: Per-layer statistics of the forward experiment, in ``layer_stats.csv`` column order.
FORWARD_COLUMNS = ("mean", "std", "pre_std", "frac_saturated", "frac_zero")

#: Verdict thresholds, relative to the N(0, 1) input (std 1). See :func:`verdict`.
EXPLODING_STD = 10.0
VANISHING_STD = 0.1
SATURATED_FRACTION = 0.5


#: Below this ratio of variance to mean square, ``E[x²] − E[x]²`` has cancelled too much (the float64
#: sums carry a relative error of up to ~1e-13, which the ratio magnifies) and the variance is
#: recomputed from deviations about the mean. Sigmoid layers whose signal has vanished (0.5 ± 1e-6)
#: are the usual case.
CANCELLATION_RATIO = 1e-4
#: Values cast to float64 at a time by :func:`float64_chunks`: 512 KiB, which stays in cache.
SUM_CHUNK = 1 << 16


def float64_chunks(values: np.ndarray) -> Iterator[np.ndarray]:
    """The 1-D ``values`` cast to float64, SUM_CHUNK at a time, into one reused buffer.

    Work on a chunk happens in cache, and no float64 copy of the whole row is ever made; the
    caller may change each chunk in place.
    """
    buffer = np.empty(min(len(values), SUM_CHUNK), dtype=np.float64)
    for start in range(0, len(values), SUM_CHUNK):
        piece = buffer[: min(SUM_CHUNK, len(values) - start)]
        np.copyto(piece, values[start : start + SUM_CHUNK])
        yield piece


def sums_float64(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σx and Σx² of each row of ``array [runs, n]``, accumulated in float64.

    Each :func:`float64_chunks` chunk is summed (numpy's pairwise sum) and dotted with itself
    (BLAS): 9 ms for 8 × 2²⁰ float32 values, against 15 ms for numpy's casting reductions over the
    whole rows and 29 ms for torch's float64-accumulating ``std_mean``, whose Welford loop is not
    vectorized.
    """
    total, squares = np.zeros(len(array)), np.zeros(len(array))
    for row, values in enumerate(array):
        for piece in float64_chunks(values):
            total[row] += piece.sum()
            squares[row] += piece @ piece
    return total, squares


def std_mean_float64(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Population std and mean of each row of ``values [runs, n]``, accumulated in float64.

    On the CPU, from float64 sums (:func:`sums_float64`): mean = Σx / n and var = Σx² / n − mean²
    (each float32 x² is exact in float64). Rows where that difference cancels (var <
    CANCELLATION_RATIO · E[x²]) are recomputed from deviations d = x − mean, with the mean rounded
    to the values' precision (d is exact for x near the mean): var = E[d²] − E[d]².

    Elsewhere torch's ``std_mean`` on float64 does it: CUDA reduces float32 in float32, so there
    the values are copied to float64 first. Float64 values can pass |x| ≈ 1e154, where x² (and
    Welford's δ²) overflows, so each row is first divided by the power of two at its largest |x|:
    exact, but for the underflow of values too small to count.
    """
    if values.device.type != "cpu" or values.dtype != torch.float32:
        values = values.to(torch.float64)
        # max|x| = m·2^e with m in [0.5, 1): dividing by 2^(e−1) leaves it in [1, 2) (2^e overflows at e = 1024).
        _, exponent = torch.frexp(values.abs().amax(dim=1))
        scale = torch.ldexp(torch.ones_like(exponent, dtype=torch.float64), exponent - 1)
        std, mean = torch.std_mean(values / scale[:, None], dim=1, correction=0)
        return std * scale, mean * scale
    array = values.detach().numpy()
    count = array.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows give NaN or inf: results, not errors
        total, squares = sums_float64(array)
        mean, mean_square = total / count, squares / count
        variance = mean_square - mean**2
        for row in np.flatnonzero(variance < CANCELLATION_RATIO * mean_square):
            deviation_total, deviation_squares = sums_float64(array[row : row + 1] - array.dtype.type(mean[row]))
            variance[row] = deviation_squares[0] / count - (deviation_total[0] / count) ** 2
        std = np.sqrt(np.maximum(variance, 0.0))
    return torch.from_numpy(std), torch.from_numpy(mean)


def count_nonzero_rows(values: torch.Tensor) -> torch.Tensor:
    """Number of non-zero (or True) entries in each row of ``values [runs, n]``, as float64 ``[runs]``."""
    if values.device.type != "cpu":
        return (values != 0).sum(dim=1, dtype=torch.int64).to(torch.float64)
    # numpy counts each row in one vectorized loop (7 ms for 8 × 2²⁰ float32 values); torch's
    # compare-then-sum writes a mask first (27 ms).
    return torch.tensor([float(np.count_nonzero(row)) for row in values.detach().numpy()], dtype=torch.float64)


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
    frac_zero = (count - count_nonzero_rows(post.flatten(1))) / count
    frac_saturated = torch.zeros_like(std) if saturated is None else count_nonzero_rows(saturated.flatten(1)) / count
    stats = {"mean": mean, "std": std, "pre_std": pre_std, "frac_saturated": frac_saturated, "frac_zero": frac_zero}
    nan = torch.tensor(math.nan, dtype=torch.float64, device=std.device)
    stats = {key: torch.where(finite, value, nan) for key, value in stats.items()}
    stats["finite"] = finite
    return stats


def row_histograms(values: torch.Tensor, bins: int, finite: Sequence[bool]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(edges, counts)`` of the finite entries of each row of ``values [runs, n]``, over the row's own range.

    Args:
        values: one row of values per run.
        bins: number of equal-width bins.
        finite: per row, whether it is known to be all finite; if not, its non-finite entries are dropped.

    Bin i of a row with range [lo, hi] holds the values v with ⌊(v − lo) · bins / (hi − lo)⌋ = i,
    the last bin closed (it holds hi). A constant row (all zeros, say) gets the unit-wide range
    [v − 0.5, v + 0.5], so the spike is visible; a row with no finite entry gets NaN edges and
    zero counts.
    """
    histograms = []
    for values_of_run, is_finite in zip(values.detach().cpu().numpy(), finite, strict=True):
        kept = values_of_run if is_finite else values_of_run[np.isfinite(values_of_run)]
        empty = (np.full(bins + 1, math.nan), np.zeros(bins, dtype=np.int64))
        histograms.append(uniform_histogram(kept, bins) if kept.size else empty)
    return histograms


def uniform_histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges ``[bins + 1]`` and counts ``[bins]`` of the finite 1-D ``values``.

    Bin positions (v − lo) / (hi − lo) · bins are computed in float64 (:func:`float64_chunks`),
    because vanishing activations (1e-40, denormal) leave float32 no room for 50 distinct edges,
    on halved values so that hi − lo cannot overflow (float64 rows of ±1e308), and by division so
    that a range of 1e-310 cannot make the scale infinite: 7 ms for 8 runs of 128 × 1024 values,
    against 13 ms with whole-row temporaries and 25 ms for ``numpy.histogram``. A constant's
    values all land in the middle bin of its unit-wide range, as ``numpy.histogram`` puts them.
    """
    low, high = float(values.min()), float(values.max())
    counts = np.zeros(bins, dtype=np.int64)
    if low == high:
        low, high = low - 0.5, high + 0.5
        counts[bins // 2] = len(values)  # ±0.5 may not even change a value beyond 2⁵³
    else:
        for position in float64_chunks(values):
            position *= 0.5
            position -= low / 2
            position /= high / 2 - low / 2
            position *= bins
            # The last bin is closed (hi lands in it); rounding may not leave the range either way.
            counts += np.bincount(np.clip(position.astype(np.intp), 0, bins - 1), minlength=bins)
    edges = 2 * (low / 2 + (high / 2 - low / 2) * (np.arange(bins + 1) / bins))
    edges[0], edges[-1] = low, high
    return edges, counts


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
