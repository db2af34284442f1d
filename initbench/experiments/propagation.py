"""Signal propagation at init: per-layer activation (forward) and gradient (backward) statistics,
each beside its mean-field prediction.

``forward`` is the classic experiment of the blogs and of Glorot & Bengio (2010): push N(0, 1)
inputs through ``depth`` square layers and watch each layer's std hold, vanish, explode or
saturate. ``gradients`` (alias ``all``) also backpropagates a fixed random loss and records the
gradients' std per layer, the half that decides whether a deep net can train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from initbench import theory
from initbench.activations import Activation
from initbench.config import Config
from initbench.engine import Run, StackedForward, check_memory, propagation_memory_estimate, resolve_dtype
from initbench.experiments import EXPERIMENTS, ExperimentResult, RunContext, Table, build_runs
from initbench.plots import histograms_figure, std_by_layer_figure
from initbench.report import display_layers, format_number, markdown_table, rich_table
from initbench.stats import (
    FORWARD_COLUMNS,
    first_nonfinite_layer,
    gradient_verdict,
    layer_statistics,
    median_layer,
    row_histograms,
    verdict,
)

HISTOGRAM_BINS = 50
#: Histograms use the first rows of the batch: 128 × width values draw the same shape as the whole
#: batch, at a fraction of the cost (a full-batch histogram per run and layer cost as much as the
#: layer's matmul).
HISTOGRAM_ROWS = 128
GRADIENT_COLUMNS = ("grad_std", "weight_grad_std")
THEORY_COLUMNS = ("theory_std", "theory_pre_std", "chi1")


@dataclass
class Measurement:
    """Per-run, per-layer results: every array is ``[runs, depth]``."""

    runs: list[Run]
    stats: dict[str, np.ndarray]  # FORWARD_COLUMNS, and GRADIENT_COLUMNS when backpropagated
    finite: np.ndarray
    histograms: list[list[tuple[np.ndarray, np.ndarray]]]  # [run][layer - 1] -> (edges, counts)

    def labels(self) -> list[str]:
        return list(dict.fromkeys(run.label for run in self.runs))

    def run_indices(self, label: str) -> list[int]:
        return [index for index, run in enumerate(self.runs) if run.label == label]

    def by_label(self, column: str) -> dict[str, np.ndarray]:
        """label → ``[seeds, depth]`` array of one column."""
        return {label: self.stats[column][self.run_indices(label)] for label in self.labels()}

    def subset(self, labels: list[str]) -> Measurement:
        """The runs of ``labels`` only, in this measurement's order: what measuring them alone gives.

        A sweep measures several points' schemes in one stacked pass and splits the result per
        point with this; runs keep their order (schemes first, then seeds), as in a run of their own.
        """
        wanted = set(labels)
        indices = [index for index, run in enumerate(self.runs) if run.label in wanted]
        return Measurement(
            runs=[self.runs[index] for index in indices],
            stats={name: values[indices] for name, values in self.stats.items()},
            finite=self.finite[indices],
            histograms=[self.histograms[index] for index in indices],
        )


def global_std(tensor: torch.Tensor) -> torch.Tensor:
    """Population std over everything but the run axis, in float64: ``[runs, ...]`` → ``[runs]``."""
    return torch.std(tensor.flatten(1).to(torch.float64), dim=1, correction=0)


def measure_runs(runs: list[Run], config: Config, activation: Activation, context: RunContext, backward: bool) -> Measurement:
    """Run every run through the net together; with ``backward``, also backpropagate the loss."""
    depth, width = config.model.depth, config.model.width
    engine = StackedForward(runs, activation, context.device, context.dtype)
    columns: dict[str, list[torch.Tensor]] = {name: [] for name in (*FORWARD_COLUMNS, "finite")}
    histograms: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in runs]
    pres: list[torch.Tensor] = []  # kept only for the backward pass: memory grows with depth there
    context.progress.start(f"{'forward + backward' if backward else 'forward'}, {len(runs)} runs", total=depth * (2 if backward else 1))
    with torch.no_grad():
        x = engine.inputs(config.input.batch, width)
        for output in engine.layers(x, [width] * depth, use_bias=config.model.bias, keep_states=backward):
            stats = layer_statistics(output.pre, output.post, activation.saturated(output.post))
            for name, values in stats.items():
                columns[name].append(values)
            layer_histograms = row_histograms(output.post[:, :HISTOGRAM_ROWS].flatten(1), HISTOGRAM_BINS, stats["finite"].tolist())
            for index, edges_counts in enumerate(layer_histograms):
                histograms[index].append(edges_counts)
            if backward:
                pres.append(output.pre)
            context.progress.advance()
        arrays = {name: torch.stack(values, dim=1).cpu().numpy() for name, values in columns.items()}
        if backward:
            gradients: dict[str, list[torch.Tensor]] = {name: [] for name in GRADIENT_COLUMNS}
            for gradient in engine.backward(x, pres):
                gradients["grad_std"].append(global_std(gradient.grad))
                gradients["weight_grad_std"].append(global_std(gradient.weight_grad))
                context.progress.advance()
            # The backward pass yields the last layer first.
            arrays.update({name: torch.stack(values[::-1], dim=1).cpu().numpy() for name, values in gradients.items()})
    finite_array = arrays.pop("finite").astype(bool)
    return Measurement(runs=runs, stats=arrays, finite=finite_array, histograms=histograms)


@dataclass(frozen=True)
class SchemeTheory:
    """Mean-field predictions for one scheme's network (see :mod:`initbench.theory`)."""

    sigma_w2: float
    sigma_b2: float
    prediction: theory.ForwardPrediction
    grad_std: np.ndarray  # predicted std of dLoss/dh per layer
    q_star: float
    chi1: float  # at q*, or at the last layer when q* is unbounded
    chi1_at: str  # "fixed point" or "last layer"
    xi_q: float
    xi_c: float
    phase: str


def scheme_theory(run: Run, activation: Activation, config: Config) -> SchemeTheory | str:
    """The predictions for ``run``'s network, or the reason there are none.

    Mean-field theory needs zero-mean i.i.d. weights (and biases): σ_w² = fan_in·Var(W_ij) and
    σ_b² = Var(b_i). The loss L = Σ x^L ⊙ r / √batch with r ~ N(0, 1) starts the backward recursion
    at Var(dL/dh^L) = E[φ'(h^L)²] / batch.
    """
    width, depth = config.model.width, config.model.depth
    variance = run.scheme.weight_variance(width, width)
    if variance is None:
        return f"'{run.label}' has no i.i.d. weight variance"
    if run.scheme.weight_mean() != 0:
        return f"'{run.label}' has non-zero-mean weights"
    sigma_b2 = 0.0
    if run.bias is not None:
        bias_variance = run.bias.weight_variance(width, width)
        if bias_variance is None or run.bias.weight_mean() != 0:
            return "the bias init is not zero-mean i.i.d."
        sigma_b2 = bias_variance
    sigma_w2 = variance * width
    prediction = theory.propagate_forward(activation, sigma_w2, sigma_b2, depth)
    with np.errstate(all="ignore"):
        last_q = float(prediction.q[-1])
        last_grad_var = theory.gaussian_moments(activation, last_q).derivative_sq / config.input.batch if math.isfinite(last_q) else math.nan
        grad_std = np.sqrt(theory.propagate_backward(activation, sigma_w2, prediction.q, last_grad_var))
    q_star = theory.fixed_point(activation, sigma_w2, sigma_b2)
    if math.isfinite(q_star):
        chi1, chi1_at = theory.chi1(activation, sigma_w2, q_star), "fixed point"
    else:
        chi1, chi1_at = float(prediction.chi1[-1]), "last layer"
    xi_q, xi_c, _ = theory.depth_scales(activation, sigma_w2, sigma_b2)
    phase = "undefined" if math.isnan(chi1) else theory.phase(chi1)
    return SchemeTheory(sigma_w2, sigma_b2, prediction, grad_std, q_star, chi1, chi1_at, xi_q, xi_c, phase)


def nan_median(values: np.ndarray) -> float:
    """Median over seeds ignoring NaN seeds; NaN only when every seed is NaN."""
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan


def summarize(measurement: Measurement, theories: dict[str, SchemeTheory | str], config: Config) -> dict[str, dict[str, Any]]:
    """``summary.json``'s per-scheme entries: medians over seeds, verdicts and the theory."""
    depth, width = config.model.depth, config.model.width
    schemes: dict[str, dict[str, Any]] = {}
    for label in measurement.labels():
        indices = measurement.run_indices(label)
        per_seed = [first_nonfinite_layer(measurement.finite[index]) for index in indices]
        first = median_layer(per_seed)
        std = measurement.stats["std"][indices]
        std_last = nan_median(std[:, -1])
        scheme = measurement.runs[indices[0]].scheme
        variance = scheme.weight_variance(width, width)
        entry: dict[str, Any] = {
            "first_nonfinite_layer": first,
            "first_nonfinite_layer_per_seed": per_seed,
            "std_first": nan_median(std[:, 0]),
            "std_last": std_last,
            "verdict": verdict(std_last, nan_median(measurement.stats["frac_saturated"][indices, -1]), first),
            "resolved_scheme": scheme.spec(),
            "weight_variance": variance,
            "sigma_w2": None if variance is None else variance * width,
            "std_median_by_layer": [nan_median(std[:, layer]) for layer in range(depth)],
        }
        if "grad_std" in measurement.stats:
            grad = measurement.stats["grad_std"][indices]
            grad_first, grad_last = nan_median(grad[:, 0]), nan_median(grad[:, -1])
            entry.update(
                grad_std_first=grad_first,
                grad_std_last=grad_last,
                grad_ratio=grad_first / grad_last if grad_last != 0.0 and math.isfinite(grad_last) else math.nan,
                grad_verdict=gradient_verdict(grad_first, grad_last),
                grad_std_median_by_layer=[nan_median(grad[:, layer]) for layer in range(depth)],
            )
        prediction = theories[label]
        if "grad_std" in measurement.stats:
            entry["theory_grad_std_first"] = None if isinstance(prediction, str) else float(prediction.grad_std[0])
        if isinstance(prediction, str):
            entry["theory"] = None
            entry["theory_note"] = f"no mean-field prediction: {prediction}"
        else:
            entry["theory"] = {
                "sigma_w2": prediction.sigma_w2,
                "sigma_b2": prediction.sigma_b2,
                "q_star": prediction.q_star,
                "chi1": prediction.chi1,
                "chi1_at": prediction.chi1_at,
                "phase": prediction.phase,
                "xi_q": prediction.xi_q,
                "xi_c": prediction.xi_c,
                "theory_std_last": float(prediction.prediction.post_std[-1]),
            }
        schemes[label] = entry
    return schemes


def layer_stats_table(measurement: Measurement, theories: dict[str, SchemeTheory | str], activation_spec: str) -> Table:
    """``layer_stats.csv``: one row per (scheme, seed, layer); theory cells empty where there is none."""
    backward = "grad_std" in measurement.stats
    measured = FORWARD_COLUMNS + (GRADIENT_COLUMNS if backward else ())
    predicted = THEORY_COLUMNS + (("theory_grad_std",) if backward else ())
    rows = []
    for index, run in enumerate(measurement.runs):
        prediction = theories[run.label]
        for layer in range(measurement.finite.shape[1]):
            values = tuple(float(measurement.stats[name][index, layer]) for name in measured)
            if isinstance(prediction, str):
                expected: tuple[Any, ...] = ("",) * len(predicted)
            else:
                expected = (float(prediction.prediction.post_std[layer]), float(prediction.prediction.pre_std[layer]), float(prediction.prediction.chi1[layer]))
                if backward:
                    expected += (float(prediction.grad_std[layer]),)
            rows.append((run.label, activation_spec, run.seed, layer + 1, *values, *expected))
    return Table(columns=("scheme", "activation", "seed", "layer", *measured, *predicted), rows=rows)


def histograms_table(measurement: Measurement) -> Table:
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
    bias = f", bias {config.init.bias}" if model.bias else ""
    return f"{model.depth} layers × {model.width} units, {model.activation}{bias}, batch {config.input.batch}"


def terminal_rows(schemes: dict[str, dict[str, Any]], depth: int, gradients: bool = False) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """A narrow table for the terminal: std at the first, middle and last layer, the theory (its
    prediction, χ₁ and phase at the fixed point, the depth scales) and the verdict."""
    layers = sorted({1, max(1, depth // 2), depth})
    key = "grad_std_median_by_layer" if gradients else "std_median_by_layer"
    columns = ("scheme", *(f"L{layer}" for layer in layers), "theory" + (" L1" if gradients else f" L{depth}"), "χ₁", "ξ_q / ξ_c", "verdict")
    rows = []
    for label, entry in schemes.items():
        prediction = entry["theory"]
        if gradients:
            expected = entry["theory_grad_std_first"]
            judged = entry["grad_verdict"]
        else:
            expected = None if prediction is None else prediction["theory_std_last"]
            first = entry["first_nonfinite_layer"]
            judged = entry["verdict"] + ("" if first is None else f" (non-finite at {first})")
        chi = "–" if prediction is None else f"{format_number(prediction['chi1'])} {prediction['phase']}"
        scales = "–" if prediction is None else f"{format_number(prediction['xi_q'])} / {format_number(prediction['xi_c'])}"
        rows.append((label, *(entry[key][layer - 1] for layer in layers), expected, chi, scales, judged))
    return columns, rows


class Propagation:
    """Shared by the forward and gradients experiments; ``backward`` says whether to backpropagate."""

    backward = False

    def check(self, config: Config, device: torch.device) -> None:
        runs = len(config.init.build_schemes()) * config.seeds
        dtype = resolve_dtype(config.dtype)
        estimate = propagation_memory_estimate(runs, config.input.batch, config.model.width, config.model.depth, self.backward, dtype)
        check_memory(estimate, device)

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        return self.analyse(config, self.measure(context, build_runs(config, config.model.build_activation())))

    def measure(self, context: RunContext, runs: list[Run]) -> Measurement:
        """Measure ``runs`` (of one or several configs that differ only in ``init``) in one stacked pass."""
        config = context.config
        return measure_runs(runs, config, config.model.build_activation(), context, self.backward)

    def analyse(self, config: Config, measurement: Measurement) -> ExperimentResult:
        """Theory, summary, tables and figures of a measurement of ``config``'s runs.

        Split from :meth:`measure` so that a sweep can measure many points in one stacked pass and
        then analyse each point's :meth:`Measurement.subset` exactly as its own run would.
        """
        activation = config.model.build_activation()
        theories = {label: scheme_theory(measurement.runs[measurement.run_indices(label)[0]], activation, config) for label in measurement.labels()}
        schemes = summarize(measurement, theories, config)
        return self.result(config, measurement, theories, schemes)

    def result(self, config: Config, measurement: Measurement, theories: dict[str, SchemeTheory | str], schemes: dict[str, dict[str, Any]]) -> ExperimentResult:
        depth = config.model.depth
        shown = display_layers(depth)
        title = describe(config)
        seeds = f"median over {config.seeds} seeds" if config.seeds > 1 else f"seed {config.seed}"
        predicted = {label: value for label, value in theories.items() if not isinstance(value, str)}

        first_seed_histograms = {
            label: {layer: measurement.histograms[measurement.run_indices(label)[0]][layer - 1] for layer in shown} for label in measurement.labels()
        }
        figures = {
            "std_by_layer.png": std_by_layer_figure(
                measurement.by_label("std"), "std of activations φ(h)", f"Activation std by layer: {title}",
                theory={label: value.prediction.post_std for label, value in predicted.items()},
            ),
            "histograms.png": histograms_figure(first_seed_histograms, f"Activations φ(h) at init, seed {config.seed}: {title}"),
        }
        if self.backward:
            figures["grad_std_by_layer.png"] = std_by_layer_figure(
                measurement.by_label("grad_std"), "std of dLoss/dh", f"Gradient std by layer: {title}",
                theory={label: value.grad_std for label, value in predicted.items()},
            )

        def cell(label: str, key: str) -> Any:
            entry = schemes[label]["theory"]
            return None if entry is None else entry[key]

        columns = ("scheme", *(f"L{layer}" for layer in shown), f"theory L{depth}", "χ₁", "phase", "non-finite at", "verdict")
        rows = [
            (
                label,
                *(entry["std_median_by_layer"][layer - 1] for layer in shown),
                cell(label, "theory_std_last"),
                cell(label, "chi1"),
                cell(label, "phase"),
                entry["first_nonfinite_layer"],
                entry["verdict"],
            )
            for label, entry in schemes.items()
        ]
        sections = [
            f"Forward pass of {title}; inputs x ~ N(0, 1). Std of φ(h) per layer ({seeds}), with the mean-field "
            f"prediction at the last layer and χ₁ = σ_w²·E[φ'(z)²] at the fixed point q*.",
            markdown_table(columns, rows),
            "Verdicts compare the last layer with the input's std of 1: exploding above 10 or non-finite, "
            "dead at exactly 0, saturated when over half the units are saturated, vanishing below 0.1. "
            "Phase: ordered (χ₁ < 1, gradients vanish toward the input), critical (χ₁ = 1), chaotic (χ₁ > 1, they grow).",
            "![Activation std by layer](std_by_layer.png)",
            "![Activation histograms](histograms.png)",
        ]
        tables = [rich_table(f"Activation std by layer ({seeds})", *terminal_rows(schemes, depth))]
        if self.backward:
            grad_columns = ("scheme", *(f"L{layer}" for layer in shown), "theory L1", "L1 / last", "gradient verdict")
            grad_rows = [
                (
                    label,
                    *(entry["grad_std_median_by_layer"][layer - 1] for layer in shown),
                    entry["theory_grad_std_first"],
                    entry["grad_ratio"],
                    entry["grad_verdict"],
                )
                for label, entry in schemes.items()
            ]
            sections += [
                "Backward pass: the loss L = Σ x^L ⊙ r / √batch with a fixed r ~ N(0, 1) is backpropagated; "
                f"std of dL/dh per layer ({seeds}). The gradient verdict compares layer 1 with the last layer: "
                "exploding toward the input above ×10, vanishing below ×0.1.",
                markdown_table(grad_columns, grad_rows),
                "![Gradient std by layer](grad_std_by_layer.png)",
            ]
            tables.append(rich_table(f"Gradient std by layer ({seeds})", *terminal_rows(schemes, depth, gradients=True)))
        tables_out = {"layer_stats.csv": layer_stats_table(measurement, theories, config.model.activation), "histograms.csv": histograms_table(measurement)}
        return ExperimentResult(
            tables=tables_out,
            summary={"experiment": config.experiment, "schemes": schemes},
            figures=figures,
            report="\n\n".join(sections),
            console_tables=tables,
        )


@EXPERIMENTS.register("forward")
class ForwardExperiment(Propagation):
    """Deep forward pass: per-layer activation mean, std, saturation and histograms, beside theory."""

    backward = False


@EXPERIMENTS.register("gradients", aliases=("all",))
class GradientsExperiment(Propagation):
    """The forward pass plus backpropagated gradient std per layer (dL/dh and dL/dW), beside theory."""

    backward = True
