"""The statistics functions against numpy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initbench.core.stats import layer_statistics, median_layer, row_histograms, verdict


def test_layer_statistics_match_numpy() -> None:
    generator = torch.Generator().manual_seed(0)
    pre = torch.randn(3, 50, 20, generator=generator)
    post = torch.relu(pre)
    stats = layer_statistics(pre, post, saturated=post > 1.5)
    for run in range(3):
        values = post[run].double().numpy()
        assert stats["mean"][run].item() == pytest.approx(values.mean(), rel=1e-12)
        assert stats["std"][run].item() == pytest.approx(values.std(), rel=1e-12)
        assert stats["pre_std"][run].item() == pytest.approx(pre[run].double().numpy().std(), rel=1e-12)
        assert stats["frac_zero"][run].item() == pytest.approx((values == 0).mean())
        assert stats["frac_saturated"][run].item() == pytest.approx((values > 1.5).mean())
    assert stats["finite"].all()


def test_huge_finite_float32_values_give_a_finite_std() -> None:
    """1e30 squared overflows float32 but not float64: the std must come out right."""
    post = torch.tensor([[[1e30, -1e30, 1e30, -1e30] * 1000]], dtype=torch.float32)
    stats = layer_statistics(post, post, None)
    assert stats["std"].item() == pytest.approx(1e30, rel=1e-6)
    assert stats["finite"].item()


def test_huge_finite_float64_values_give_a_finite_std() -> None:
    """A float64 run's activations can pass 1e154, where x² overflows even in float64."""
    post = torch.tensor([[[1e200, -1e200] * 500]], dtype=torch.float64)
    stats = layer_statistics(post, post, None)
    assert stats["std"].item() == pytest.approx(1e200, rel=1e-12)


def test_std_is_accurate_when_the_mean_dwarfs_it() -> None:
    """A sigmoid-like layer (mean 0.5, std 1e-3): float32 accumulation would lose the std."""
    post = 0.5 + 1e-3 * torch.randn(1, 1, 1_000_000, generator=torch.Generator().manual_seed(1))
    stats = layer_statistics(post, post, None)
    assert stats["std"].item() == pytest.approx(post.double().std(correction=0).item(), rel=1e-6)


@pytest.mark.parametrize(("mean", "std"), [(0.5, 1e-6), (0.5, 1e-8), (1e4, 1.0), (-3.0, 1e-5)])
def test_std_is_exact_when_e_x2_minus_mean2_cancels(mean: float, std: float) -> None:
    """A vanished sigmoid signal (0.5 ± 1e-6, even below float32's spacing) or a large offset:
    E[x²] − E[x]² loses the variance, so those rows are recomputed from deviations."""
    post = (mean + std * torch.randn(2, 1, 200_000, generator=torch.Generator().manual_seed(2))).float()
    stats = layer_statistics(post, post, None)
    for run in range(2):
        expected = post[run].double().numpy().std()
        assert stats["std"][run].item() == pytest.approx(expected, rel=1e-9, abs=1e-30)


def test_non_finite_layers_are_recorded_as_nan() -> None:
    post = torch.tensor([[[1.0, 2.0]], [[math.inf, 1.0]], [[math.nan, 0.0]]])
    stats = layer_statistics(post, post, None)
    assert stats["finite"].tolist() == [True, False, False]
    for name in ("mean", "std", "pre_std", "frac_zero", "frac_saturated"):
        assert math.isfinite(stats[name][0].item())
        assert math.isnan(stats[name][1].item()) and math.isnan(stats[name][2].item())


def histogram(values: torch.Tensor, bins: int, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One row's histogram."""
    return row_histograms(values.unsqueeze(0), bins, [finite])[0]


def test_row_histograms_match_numpy() -> None:
    """Rows of different ranges in one pass, each as numpy.histogram bins it on its own."""
    generator = torch.Generator().manual_seed(3)
    values = torch.stack([torch.randn(5000, generator=generator) * scale + shift for scale, shift in [(1, 0), (1e-3, 0.5), (1e20, 0), (1e-39, 0)]])
    values[3] = values[3].abs()  # denormal float32 values
    for row, (edges, counts) in enumerate(row_histograms(values, 50, [True] * 4)):
        expected_counts, expected_edges = np.histogram(values[row].double().numpy(), bins=50)
        np.testing.assert_allclose(edges, expected_edges, rtol=1e-12)
        assert np.abs(counts - expected_counts).sum() <= 2  # a value within rounding of an edge may fall either side
        assert counts.sum() == 5000


@pytest.mark.parametrize(
    "row",
    [[1e-310, 2e-310, 3e-310, 3e-310], [1e308, -1e308, 0.0, 5e307], [2.0**60] * 4, [0.0, 0.0, 0.0, 1e-320]],
    ids=["denormal-range", "overflowing-range", "huge-constant", "one-denormal"],
)
def test_float64_histograms_of_extreme_ranges(row: list[float]) -> None:
    """A float64 run's vanished or exploded layer still gets a histogram holding every value."""
    (edges, counts), = row_histograms(torch.tensor([row], dtype=torch.float64), 4, [True])
    assert counts.sum() == 4 and np.all(np.isfinite(edges))
    if len(set(row)) == 1:
        assert counts[2] == 4  # the middle bin, as numpy.histogram puts a constant
    else:
        assert edges[0] == min(row) and edges[-1] == max(row) and counts[0] >= 1 and counts[-1] >= 1


def test_float64_std_of_the_largest_finite_values() -> None:
    """max|x| ≥ 2^1023: the rescaling power of two itself must stay finite."""
    post = torch.tensor([[[1e308, -1e308, 5e307, -5e307]]], dtype=torch.float64)
    stats = layer_statistics(post, post, None)
    assert stats["finite"].item()
    assert stats["std"].item() == pytest.approx(1e308 * np.sqrt((1 + 1 + 0.25 + 0.25) / 4), rel=1e-12)


def test_non_finite_rows_drop_only_their_non_finite_values() -> None:
    values = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, math.inf, 2.0, math.nan], [math.nan] * 4])
    (edges_a, counts_a), (edges_b, counts_b), (edges_c, counts_c) = row_histograms(values, 2, [True, False, False])
    assert counts_a.tolist() == [2, 2] and (edges_a[0], edges_a[-1]) == (0.0, 3.0)
    assert counts_b.tolist() == [1, 1] and (edges_b[0], edges_b[-1]) == (0.0, 2.0)
    assert counts_c.tolist() == [0, 0] and np.isnan(edges_c).all()


def test_histogram_counts_every_finite_value() -> None:
    values = torch.tensor([0.0, 0.1, 0.2, 0.95, 1.0, math.inf, math.nan])
    edges, counts = histogram(values, bins=10, finite=False)
    assert counts.sum() == 5
    assert edges[0] == 0.0 and edges[-1] == 1.0
    assert counts[0] == 1 and counts[-1] == 2  # the last bin is closed: it holds the maximum


def test_histogram_of_vanishing_values() -> None:
    """Values near float32's smallest (1e-40, denormal) still get 50 distinct bins."""
    values = torch.tensor([0.0, 1e-42, 5e-41, 1e-40], dtype=torch.float32)
    edges, counts = histogram(values, bins=50)
    assert counts.sum() == 4 and np.all(np.diff(edges) > 0)


def test_histogram_of_a_constant_and_of_nothing() -> None:
    edges, counts = histogram(torch.zeros(100), bins=4)
    assert (edges[0], edges[-1]) == (-0.5, 0.5) and counts.sum() == 100
    edges, counts = histogram(torch.full((3,), math.nan), bins=4, finite=False)
    assert np.isnan(edges).all() and counts.sum() == 0


@pytest.mark.parametrize(
    ("layers", "expected"),
    [([32], 32), ([30, 34, 32], 32), ([None, 31, None], None), ([31, None, 33], 33), ([None], None), ([20, 30], 20)],
)
def test_median_layer_treats_never_as_last(layers, expected) -> None:
    assert median_layer(layers) == expected


@pytest.mark.parametrize(
    ("std_last", "saturated", "first", "expected"),
    [
        (1.0, 0.0, None, "stable"),
        (0.05, 0.0, None, "vanishing"),
        (50.0, 0.0, None, "exploding"),
        (math.nan, 0.0, 32, "exploding"),
        (0.0, 0.0, None, "dead"),
        (0.98, 0.9, None, "saturated"),
    ],
)
def test_verdict(std_last: float, saturated: float, first: int | None, expected: str) -> None:
    assert verdict(std_last, saturated, first) == expected
