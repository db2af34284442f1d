"""The deep forward pass: per-layer activation statistics of a fully connected net at init.

This is the classic experiment of the blogs and of Glorot & Bengio (2010): push N(0, 1) inputs
through ``depth`` square layers and watch each layer's std hold, vanish, explode or saturate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from initbench.activations import Activation
from initbench.config import Config
from initbench.engine import Run, StackedForward, check_memory, forward_memory_estimate, resolve_dtype
from initbench.experiments import EXPERIMENTS, ExperimentResult, RunContext, Table
from initbench.plots import histograms_figure, std_by_layer_figure
from initbench.report import display_layers, markdown_table, rich_table
from initbench.stats import FORWARD_COLUMNS, first_nonfinite_layer, histogram, layer_statistics, median_layer, verdict

HISTOGRAM_BINS = 50


def build_runs(config: Config, activation: Activation) -> list[Run]:
    """One run per (scheme, seed), schemes first, with options like ``gain: auto`` resolved."""
    bias = config.init.build_bias().resolve(activation) if config.model.bias else None
    return [
        Run(label=label, seed=seed, scheme=scheme.resolve(activation), bias=bias)
        for label, scheme in config.init.build_schemes()
        for seed in config.seed_list()
    ]


@dataclass
class ForwardMeasurement:
    """Per-run, per-layer results: ``stats[column]`` and ``finite`` are ``[runs, depth]``."""

    runs: list[Run]
    stats: dict[str, np.ndarray]
    finite: np.ndarray
    histograms: list[list[tuple[np.ndarray, np.ndarray]]]  # [run][layer - 1] -> (edges, counts)

    def run_indices(self, label: str) -> list[int]:
        return [index for index, run in enumerate(self.runs) if run.label == label]

    def labels(self) -> list[str]:
        return list(dict.fromkeys(run.label for run in self.runs))


def measure_forward(runs: list[Run], config: Config, activation: Activation, context: RunContext) -> ForwardMeasurement:
    """Run every run through the net together and collect each layer's statistics."""
    depth, width = config.model.depth, config.model.width
    engine = StackedForward(runs, activation, context.device, context.dtype)
    columns: dict[str, list[torch.Tensor]] = {name: [] for name in (*FORWARD_COLUMNS, "finite")}
    histograms: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in runs]
    context.progress.start(f"forward, {len(runs)} runs", total=depth)
    with torch.no_grad():
        x = engine.inputs(config.input.batch, width)
        for output in engine.layers(x, [width] * depth, use_bias=config.model.bias):
            stats = layer_statistics(output.pre, output.post, activation.saturated(output.post))
            for name, values in stats.items():
                columns[name].append(values)
            finite = stats["finite"].tolist()
            for index in range(len(runs)):
                histograms[index].append(histogram(output.post[index], HISTOGRAM_BINS, finite=finite[index]))
            context.progress.advance()
    arrays = {name: torch.stack(values, dim=1).cpu().numpy() for name, values in columns.items()}
    finite = arrays.pop("finite").astype(bool)
    return ForwardMeasurement(runs=runs, stats=arrays, finite=finite, histograms=histograms)


def nan_median(values: np.ndarray) -> float:
    """Median over seeds ignoring NaN seeds; NaN only when every seed is NaN."""
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def summarize(measurement: ForwardMeasurement, config: Config) -> dict[str, dict[str, object]]:
    """``summary.json``'s per-scheme entries: medians over seeds and the verdict."""
    depth, width = config.model.depth, config.model.width
    schemes: dict[str, dict[str, object]] = {}
    for label in measurement.labels():
        indices = measurement.run_indices(label)
        per_seed = [first_nonfinite_layer(measurement.finite[index]) for index in indices]
        first = median_layer(per_seed)
        std = measurement.stats["std"][indices]
        std_first, std_last = nan_median(std[:, 0]), nan_median(std[:, -1])
        saturated_last = nan_median(measurement.stats["frac_saturated"][indices, -1])
        scheme = measurement.runs[indices[0]].scheme
        variance = scheme.weight_variance(width, width)
        schemes[label] = {
            "first_nonfinite_layer": first,
            "first_nonfinite_layer_per_seed": per_seed,
            "std_first": std_first,
            "std_last": std_last,
            "verdict": verdict(std_last, saturated_last, first),
            "resolved_scheme": scheme.spec(),
            "weight_variance": variance,
            "sigma_w2": None if variance is None else variance * width,
            "std_median_by_layer": [nan_median(std[:, layer]) for layer in range(depth)],
        }
    return schemes


def layer_stats_table(measurement: ForwardMeasurement, activation_spec: str) -> Table:
    """``layer_stats.csv``: one row per (scheme, seed, layer)."""
    rows = []
    for index, run in enumerate(measurement.runs):
        for layer in range(measurement.finite.shape[1]):
            values = tuple(float(measurement.stats[name][index, layer]) for name in FORWARD_COLUMNS)
            rows.append((run.label, activation_spec, run.seed, layer + 1, *values))
    return Table(columns=("scheme", "activation", "seed", "layer", *FORWARD_COLUMNS), rows=rows)


def histograms_table(measurement: ForwardMeasurement) -> Table:
    """``histograms.csv``: every (scheme, seed, layer)'s histogram of φ(h), one row per bin."""
    rows = []
    for index, run in enumerate(measurement.runs):
        for layer, (edges, counts) in enumerate(measurement.histograms[index], start=1):
            for bin_index, count in enumerate(counts):
                rows.append((run.label, run.seed, layer, bin_index, float(edges[bin_index]), float(edges[bin_index + 1]), int(count)))
    return Table(columns=("scheme", "seed", "layer", "bin", "left", "right", "count"), rows=rows)


def describe(config: Config) -> str:
    """One line naming the network, for titles."""
    model = config.model
    bias = ", bias" if model.bias else ""
    return f"{model.depth} layers × {model.width} units, {model.activation}{bias}, batch {config.input.batch}"


@EXPERIMENTS.register("forward")
class ForwardExperiment:
    """Deep forward pass: per-layer activation mean, std, saturation and histograms at init."""

    def check(self, config: Config, device: torch.device) -> None:
        runs = len(config.init.build_schemes()) * config.seeds
        check_memory(forward_memory_estimate(runs, config.input.batch, config.model.width, resolve_dtype(config.dtype)), device)

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        activation = config.model.build_activation()
        runs = build_runs(config, activation)
        measurement = measure_forward(runs, config, activation, context)
        schemes = summarize(measurement, config)
        depth = config.model.depth
        shown = display_layers(depth)

        std_series = {label: measurement.stats["std"][measurement.run_indices(label)] for label in measurement.labels()}
        first_seed_histograms = {
            label: {layer: measurement.histograms[measurement.run_indices(label)[0]][layer - 1] for layer in shown}
            for label in measurement.labels()
        }
        title = describe(config)
        figures = {
            "std_by_layer.png": std_by_layer_figure(std_series, "std of activations φ(h)", f"Activation std by layer: {title}"),
            "histograms.png": histograms_figure(first_seed_histograms, f"Activations φ(h) at init, seed {config.seed}: {title}"),
        }

        columns = ("scheme", *(f"std L{layer}" for layer in shown), "first non-finite", "verdict")
        rows = [
            (label, *(entry["std_median_by_layer"][layer - 1] for layer in shown), entry["first_nonfinite_layer"], entry["verdict"])  # type: ignore[index]
            for label, entry in schemes.items()
        ]
        seeds = f"median over {config.seeds} seeds" if config.seeds > 1 else f"seed {config.seed}"
        report = "\n\n".join(
            [
                f"Forward pass of {title}; inputs x ~ N(0, 1). Std of φ(h) per layer ({seeds}).",
                markdown_table(columns, rows),
                "Verdicts compare the last layer with the input's std of 1: exploding above 10 or non-finite, "
                "dead at exactly 0, saturated when over half the units are saturated, vanishing below 0.1.",
                "![Activation std by layer](std_by_layer.png)",
                "![Activation histograms](histograms.png)",
            ]
        )
        return ExperimentResult(
            tables={"layer_stats.csv": layer_stats_table(measurement, config.model.activation), "histograms.csv": histograms_table(measurement)},
            summary={"experiment": "forward", "schemes": schemes},
            figures=figures,
            report=report,
            console_table=rich_table(f"Activation std by layer ({seeds})", columns, rows),
        )
