"""The statistics functions against numpy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initbench.stats import histogram, layer_statistics, median_layer, verdict


def test_layer_statistics_match_numpy() -> None:
    generator = torch.Generator().manual_seed(0)
    pre = torch.randn(3, 50, 20, generator=generator)
    post = torch.relu(pre)
    stats = layer_statistics(pre, post, saturated=post > 1.5)
    for run in range(3):
        # Accumulated in float64; the CPU path returns float32-rounded results (relative 6e-8).
        values = post[run].double().numpy()
        assert stats["mean"][run].item() == pytest.approx(values.mean(), rel=1e-7)
        assert stats["std"][run].item() == pytest.approx(values.std(), rel=1e-7)
        assert stats["pre_std"][run].item() == pytest.approx(pre[run].double().numpy().std(), rel=1e-7)
        assert stats["frac_zero"][run].item() == pytest.approx((values == 0).mean())
        assert stats["frac_saturated"][run].item() == pytest.approx((values > 1.5).mean())
    assert stats["finite"].all()


def test_huge_finite_float32_values_give_a_finite_std() -> None:
    """1e30 squared overflows float32 but not float64: the std must come out right."""
    post = torch.tensor([[[1e30, -1e30, 1e30, -1e30] * 1000]], dtype=torch.float32)
    stats = layer_statistics(post, post, None)
    assert stats["std"].item() == pytest.approx(1e30, rel=1e-6)
    assert stats["finite"].item()


def test_std_is_accurate_when_the_mean_dwarfs_it() -> None:
    """A sigmoid-like layer (mean 0.5, std 1e-3): float32 accumulation would lose the std."""
    post = 0.5 + 1e-3 * torch.randn(1, 1, 1_000_000, generator=torch.Generator().manual_seed(1))
    stats = layer_statistics(post, post, None)
    assert stats["std"].item() == pytest.approx(post.double().std(correction=0).item(), rel=1e-6)


def test_non_finite_layers_are_recorded_as_nan() -> None:
    post = torch.tensor([[[1.0, 2.0]], [[math.inf, 1.0]], [[math.nan, 0.0]]])
    stats = layer_statistics(post, post, None)
    assert stats["finite"].tolist() == [True, False, False]
    for name in ("mean", "std", "pre_std", "frac_zero", "frac_saturated"):
        assert math.isfinite(stats[name][0].item())
        assert math.isnan(stats[name][1].item()) and math.isnan(stats[name][2].item())


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
