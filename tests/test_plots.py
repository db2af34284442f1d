"""Figures, tested on the figure objects they return: axis limits, legend entries and marks.

Each builder gets plain arrays and dicts, as the experiments pass them, and the test reads back what
a person would see: the y-range, which labels the legend lists, where marks sit, which colour scale
a panel uses, whether the legend overlaps the data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from initbench.render.figures import (
    color,
    decision_boundary_figure,
    histograms_figure,
    linestyle,
    luminance,
    phase_figure,
    std_by_layer_figure,
    training_curves_figure,
)
from initbench.theory.phase_diagram import PhaseDiagram


def legend_texts(figure: Figure) -> list[str]:
    texts = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    texts += [text.get_text() for axes in figure.axes if axes.get_legend() for text in axes.get_legend().get_texts()]
    return texts


def legend_covers_data(figure: Figure, axes: list | None = None) -> bool:
    """Whether any legend's box overlaps the box of any of ``axes`` (default: all), once laid out."""
    figure.draw_without_rendering()
    legends = [*figure.legends, *(a.get_legend() for a in figure.axes if a.get_legend())]
    frames = [a.get_window_extent() for a in (axes if axes is not None else figure.axes)]
    return any(legend.get_window_extent().overlaps(frame) for legend in legends for frame in frames)


def propagation_series() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Four schemes of a 40-layer net, 3 seeds: dead, overflowing at layer 20, vanishing, stable."""
    layers = np.arange(1, 41)
    exploding = np.tile(10.0 ** (2 * layers), (3, 1))
    exploding[:, 19:] = np.nan
    series = {
        "zeros": np.zeros((3, 40)),
        "random": exploding,
        "xavier": np.tile(0.7**layers, (3, 1)) * np.array([[0.9], [1.0], [1.1]]),
        "he": np.tile(np.ones(40), (3, 1)) * np.array([[0.8], [1.0], [1.2]]),
    }
    theory = {"zeros": np.zeros(40), "random": 10.0 ** (2 * layers), "xavier": 0.7**layers, "he": np.ones(40)}
    return series, theory


def main_axes(figure: Figure):
    return next(axes for axes in figure.axes if axes.get_yscale() == "log")


def test_std_by_layer_range_follows_the_measurements_not_the_theory_past_an_overflow() -> None:
    series, theory = propagation_series()
    figure = std_by_layer_figure(series, "std", "title", theory)
    low, high = main_axes(figure).get_ylim()
    measured_max = 10.0 ** (2 * 19)  # layer 19, the last finite one; the theory goes on to 1e80
    assert measured_max < high < 1e50
    assert low < 0.7**40 * 0.9
    assert high / low < 1e60


def test_std_by_layer_puts_non_finite_and_zero_marks_in_labelled_strips() -> None:
    series, theory = propagation_series()
    figure = std_by_layer_figure(series, "std", "title", theory)
    strips = {axes.get_ylabel(): axes for axes in figure.axes if axes.get_yscale() == "linear"}
    assert set(strips) == {"non-\nfinite", "std\n= 0"}
    for axes in strips.values():
        assert list(axes.get_yticks()) == []  # no tick that reads as a value
    crosses = [line for line in strips["non-\nfinite"].get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == list(range(20, 41))
    assert crosses[0].get_color() == color(1)
    triangles = [line for line in strips["std\n= 0"].get_lines() if line.get_marker() == "v"]
    assert len(triangles) == 1 and len(triangles[0].get_xdata()) == 40 and triangles[0].get_color() == color(0)
    assert not [line for line in main_axes(figure).get_lines() if line.get_marker() in ("x", "v")]


def test_std_by_layer_legend_lists_only_what_occurs_and_the_seeds() -> None:
    series, theory = propagation_series()
    texts = legend_texts(std_by_layer_figure(series, "std", "title", theory))
    assert texts[:4] == ["zeros", "random", "xavier", "he"]
    assert "median over 3 seeds" in texts and "min–max over 3 seeds" in texts and "mean-field theory" in texts
    assert any(text.startswith("non-finite") for text in texts) and any(text.startswith("std exactly 0") for text in texts)

    stable = {"he": np.ones((1, 10))}
    texts = legend_texts(std_by_layer_figure(stable, "std", "title"))
    assert texts == ["he", "one seed"]  # no band, no theory, no marks: none of them listed


def test_std_by_layer_legend_never_covers_the_data() -> None:
    series, theory = propagation_series()
    figure = std_by_layer_figure(series, "std", "title", theory)
    assert not legend_covers_data(figure)


def test_std_by_layer_twenty_schemes_get_twenty_distinct_styles() -> None:
    series = {f"s{index}": np.full((1, 5), 1.0 + index) for index in range(20)}
    figure = std_by_layer_figure(series, "std", "title")
    lines = main_axes(figure).get_lines()[:20]
    styles = {(to_rgb(line.get_color()), str(line.get_linestyle()), str(line.get_dashes() if hasattr(line, "get_dashes") else "")) for line in lines}
    assert len({(to_rgb(color(index)), str(linestyle(index))) for index in range(20)}) == 20
    assert len({(to_rgb(line.get_color()), line.get_linestyle()) for line in lines}) == 20, styles


def test_std_by_layer_identical_curves_stay_visible_with_a_note() -> None:
    series, theory = propagation_series()
    series["kaiming_normal"] = series["he"].copy()
    figure = std_by_layer_figure(series, "std", "title", theory)
    assert "kaiming_normal (same curve as he)" in legend_texts(figure)
    duplicate = main_axes(figure).get_lines()
    marked = [line for line in duplicate if line.get_marker() not in ("None", None, "") and line.get_linestyle() == "None"]
    assert len(marked) == 1 and marked[0].get_color() == color(4)


def test_std_by_layer_with_nothing_drawable_says_so() -> None:
    figure = std_by_layer_figure({"zeros": np.zeros((2, 5))}, "std", "title")
    axes = main_axes(figure)
    assert axes.get_ylim() == pytest.approx((1e-3, 1e3))
    assert any("no finite, non-zero std" in text.get_text() for text in axes.texts)


def relu_histogram(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    values = np.maximum(rng.standard_normal(10_000), 0)
    counts, edges = np.histogram(values, bins=50)
    return edges, counts


def test_histograms_have_axis_labels_and_cut_relu_spike_with_its_share() -> None:
    edges, counts = relu_histogram(np.random.default_rng(0))
    figure = histograms_figure({"he": {1: (edges, counts)}}, "title")
    axes = figure.axes[0]
    assert axes.get_xlabel() == "φ(h)" and "share of values" in axes.get_ylabel()
    share = counts / counts.sum()
    assert share[0] > 0.5
    assert axes.get_ylim()[1] == pytest.approx(1.25 * share[1:].max())  # the rest is not flattened
    assert f"{share[0]:.0%}" in [text.get_text().strip() for text in axes.texts]
    assert any("spike" in text for text in legend_texts(figure))


def test_histograms_without_a_spike_are_not_cut_and_have_no_spike_legend() -> None:
    values = np.random.default_rng(1).standard_normal(10_000)
    counts, edges = np.histogram(values, bins=50)
    figure = histograms_figure({"he": {1: (edges, counts)}}, "title")
    assert figure.axes[0].get_ylim()[1] == pytest.approx(1.08 * counts.max() / counts.sum())
    assert legend_texts(figure) == []


def test_histograms_of_non_finite_layers_say_so_without_an_empty_axis() -> None:
    edges, counts = relu_histogram(np.random.default_rng(0))
    nonfinite = (np.full(51, np.nan), np.zeros(50, dtype=np.int64))
    figure = histograms_figure({"random": {1: (edges, counts), 50: nonfinite}}, "title")
    axes = figure.axes[1]
    assert list(axes.get_xticks()) == [] and list(axes.get_yticks()) == []
    assert any("non-finite" in text.get_text() for text in axes.texts)


def phase_diagram(measured: bool) -> PhaseDiagram:
    """A 4 × 3 grid: the last column has no fixed point; with measurements, one cell never settles."""
    sw2, sb2 = np.array([0.5, 1.0, 1.5, 2.5]), np.array([0.0, 0.1, 0.2])
    chi1 = np.tile([0.5, 0.9, 1.2, np.nan], (3, 1))
    q_star = np.tile([0.0, 0.3, 0.8, np.inf], (3, 1))
    xi = np.tile([1.5, 10.0, 5.0, np.nan], (3, 1))
    predicted = np.tile([0.0, 30.0, 15.0, np.nan], (3, 1))
    measured_depth = np.tile([0.0, 28.0, np.nan, np.nan], (3, 1)) if measured else None
    phase = np.tile(np.array(["ordered", "ordered", "chaotic", "unbounded"], dtype=object), (3, 1))
    return PhaseDiagram(
        "tanh", sw2, sb2, q_star, chi1, xi, c_star=np.tile([1.0, 0.5, 0.2, np.nan], (3, 1)), phase=phase, predicted_depth=predicted, measured_depth=measured_depth
    )


def test_phase_measured_marks_unsettled_cells_apart_from_cells_without_a_fixed_point() -> None:
    figure = phase_figure(phase_diagram(measured=True), {"LeCun": 1.0}, 50)
    texts = legend_texts(figure)
    assert "did not settle within 50 layers" in texts and "no fixed point (q* unbounded)" in texts
    measured_panel = figure.axes[2]
    hatches = [patch.get_hatch() for patch in measured_panel.patches if isinstance(patch, Rectangle)]
    assert hatches.count("///") == 3 and hatches.count("xx") == 3  # column 3 never settled; column 4 has no c*
    assert not legend_covers_data(figure, figure.axes[:3])


def test_phase_depth_panels_share_the_one_colour_scale_of_their_colorbar() -> None:
    figure = phase_figure(phase_diagram(measured=True), {"LeCun": 1.0}, 50)
    predicted, measured = (figure.axes[index].collections[0] for index in (1, 2))
    assert predicted.norm is measured.norm
    assert (measured.norm.vmin, measured.norm.vmax) == (0.0, 50.0)
    colorbars = [axes for axes in figure.axes if axes.get_label() == "<colorbar>"]
    assert len(colorbars) == 2  # χ₁'s, and one for both depth panels
    assert measured.norm(0.0) == 0.0  # depth 0 (settled at once) is coloured, not blank


def test_phase_theory_only_marks_cells_without_a_fixed_point() -> None:
    figure = phase_figure(phase_diagram(measured=False), {"LeCun": 1.0}, None)
    assert "did not settle" not in " ".join(legend_texts(figure))
    assert sum(isinstance(patch, Rectangle) and patch.get_hatch() == "xx" for patch in figure.axes[0].patches) == 3


def training_curves() -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]], dict[str, dict]]:
    steps = np.array([0, 100, 200, 300])
    he = {"loss": np.array([[0.7, 0.3, 0.1, 0.05]] * 3), "test_acc": np.array([[0.5, 0.8, 0.92, 0.95], [0.5, 0.7, 0.85, 0.93], [0.5, 0.6, 0.7, 0.8]])}
    big = {"loss": np.array([[3.0, 2.0, 1.0, 0.9], [3.0, 5.0, np.nan, np.nan], [3.0, 2.5, 1.5, 1.0]]), "test_acc": np.array([[0.5, 0.6, 0.7, 0.7], [0.5, 0.55, np.nan, np.nan], [0.5, 0.6, 0.65, 0.7]])}
    schemes = {
        "he": {"diverged_at_step": [None, None, None], "target_accuracy": 0.9, "steps_to_target_per_seed": [200, 300, None]},
        "normal:std=10": {"diverged_at_step": [None, 150, None], "target_accuracy": 0.9, "steps_to_target_per_seed": [None, None, None]},
    }
    return steps, {"he": he, "normal:std=10": big}, schemes


def test_training_curves_have_one_legend_with_band_chance_target_and_reached_counts() -> None:
    steps, curves, schemes = training_curves()
    figure = training_curves_figure(steps, curves, "title", schemes, chance=0.5)
    assert len(figure.legends) == 1 and all(axes.get_legend() is None for axes in figure.axes)
    texts = legend_texts(figure)
    assert "he: 2 of 3 reached, median step 200" in texts
    assert "normal:std=10: 0 of 3 reached" in texts
    assert "min–max over 3 seeds" in texts and "chance (most frequent class): 0.5" in texts and "target test accuracy 0.9" in texts
    accuracy = figure.axes[1]
    levels = sorted(line.get_ydata()[0] for line in accuracy.get_lines() if len(set(line.get_ydata())) == 1 and line.get_xdata()[0] == 0 and line.get_xdata()[-1] == 1)
    assert levels == [0.5, 0.9]
    assert not legend_covers_data(figure)


def test_training_curves_mark_a_diverged_seed_at_its_step() -> None:
    steps, curves, schemes = training_curves()
    figure = training_curves_figure(steps, curves, "title", schemes, chance=0.5)
    for axes, metric in zip(figure.axes, ("loss", "test_acc"), strict=True):
        marks = [line for line in axes.get_lines() if line.get_marker() == "X"]
        assert len(marks) == 1
        assert list(marks[0].get_xdata()) == [150] and list(marks[0].get_ydata()) == [curves["normal:std=10"][metric][1, 1]]
    assert any(text.startswith("a seed diverged") for text in legend_texts(figure))
    steps, curves, schemes = training_curves()
    schemes["normal:std=10"]["diverged_at_step"] = [None, None, None]
    assert not any(text.startswith("a seed diverged") for text in legend_texts(training_curves_figure(steps, curves, "title", schemes)))


def test_decision_boundary_has_a_class_legend() -> None:
    grid_x, grid_y = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5))
    points = np.array([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.5]])
    figure = decision_boundary_figure(points, np.array([0, 1, 2]), grid_x, grid_y, {"he\nseed 0: test acc 0.9": (grid_x > 0).astype(int)}, "title")
    texts = legend_texts(figure)
    assert texts[:3] == ["class 0", "class 1", "class 2"]
    scatter = figure.axes[0].collections[-1]
    handles = figure.legends[0].legend_handles
    assert [to_rgb(handle.get_color()) for handle in handles[:3]] == [to_rgb(rgba) for rgba in scatter.to_rgba(np.array([0, 1, 2]))]
    assert not legend_covers_data(figure, figure.axes[:1])


@pytest.mark.parametrize("rgb, text", [((0.02, 0.19, 0.38), "white"), ((0.97, 0.97, 0.97), "black"), ((0.99, 0.91, 0.15), "black"), ((0.27, 0.0, 0.33), "white")])
def test_cell_labels_contrast_with_their_background(rgb: tuple[float, float, float], text: str) -> None:
    from initbench.render.figures import text_color_on

    assert text_color_on(rgb) == text
    assert (luminance(rgb) > 0.45) == (text == "black")


def sweep_report(metric: str = "std_last"):
    """A 3 schemes × 2 activations × 3 depths propagation sweep: he/tanh overflows at depth 100."""
    from initbench.runs.sweeps import Axis, Sweep, SweepReport
    from initbench.runs.sweeps.collect import PROPAGATION_METRICS

    axes = (Axis("init.scheme", ("xavier", "he", "zeros")), Axis("model.activation", ("tanh", "relu")), Axis("model.depth", (10, 30, 100)))
    sweep = Sweep.expand({"name": "grid", "model": {"depth": 10, "width": 8}}, axes, "test")
    rows = []
    for point in sweep.points:
        scheme, activation, depth = point.values["init.scheme"], point.values["model.activation"], point.values["model.depth"]
        base = {"xavier": 0.9 if activation == "tanh" else 0.5, "he": 1.3 if activation == "tanh" else 1.0, "zeros": 0.0}[scheme]
        std = math.inf if (scheme, activation, depth) == ("he", "tanh", 100) else base ** (depth / 10)
        rows.append({
            "point": point.name, "scheme": scheme, "experiment": "forward", "activation": activation, "depth": depth, "width": 8,
            "seeds": 1, "std_first": 1.0, "std_last": std, "theory_std_last": 1.2 * std if scheme != "zeros" else 0.0,
            "chi1": 1.0, "phase": "critical", "verdict": "stable", "first_nonfinite_layer": None,
        })
    columns = ("point", "scheme", "experiment", "activation", "depth", "width", "seeds", *PROPAGATION_METRICS)
    return SweepReport(sweep, Path("."), columns, rows, [], metric)


def test_sweep_by_depth_has_one_colour_per_scheme_one_style_per_activation_and_theory() -> None:
    from initbench.outputs.sweep_figures import by_depth_figure

    figure = by_depth_figure(sweep_report())
    axes = main_axes(figure)
    measured = [line for line in axes.get_lines() if line.get_linewidth() == 2]
    theory = [line for line in axes.get_lines() if line.get_linewidth() == 1]
    assert len(measured) == 6 and len(theory) == 4  # zeros has no positive prediction to draw
    by_scheme: dict[str, set] = {}
    for line in measured:
        by_scheme.setdefault(to_rgb(line.get_color()), set()).add(line.get_linestyle())
    assert set(by_scheme) == {to_rgb(color(index)) for index in range(3)}
    assert all(styles == {"-", "--"} for styles in by_scheme.values())
    title = figure.axes[0].get_title()
    assert "init.scheme" in title and "model.activation" in title and "model.depth" in title
    texts = legend_texts(figure)
    assert texts[:5] == ["scheme xavier", "scheme he", "scheme zeros", "activation tanh", "activation relu"]
    assert "mean-field theory (thin)" in texts and "non-finite" in texts and "exactly 0" in texts
    low, high = axes.get_ylim()
    assert low < 0.5**10 and 1.3**3 < high < 1e3  # measurements set the range
    assert not legend_covers_data(figure)


def test_sweep_heatmap_panels_share_one_scale_and_labels_contrast_with_cells() -> None:
    from initbench.outputs.sweep_figures import heatmap_figure

    for metric in ("std_last", "test_acc"):
        report = sweep_report(metric)
        if metric == "test_acc":
            for row in report.rows:
                row["test_acc"] = {"tanh": 0.6, "relu": 0.95}[row["activation"]] * (0.5 if row["scheme"] == "zeros" else 1.0)
        figure = heatmap_figure(report)
        images = [axes.images[0] for axes in figure.axes if axes.images]
        assert len(images) == 3 and len({id(image.norm) for image in images}) == 1
        colorbars = [axes for axes in figure.axes if axes.get_label() == "<colorbar>"]
        assert len(colorbars) == 1
        for axes in figure.axes:
            if not axes.images:
                continue
            image = axes.images[0]
            data = image.get_array()
            for text in axes.texts:
                column, row = (round(value) for value in text.get_position())
                cell = (0.85, 0.85, 0.85) if np.ma.is_masked(data[row, column]) else image.cmap(image.norm(data[row, column]))[:3]
                assert abs(luminance(cell) - luminance(to_rgb(text.get_color()))) > 0.4, (text.get_text(), cell)
