"""Signal propagation at init: per-layer activation (forward) and gradient (backward) statistics,
each beside its mean-field prediction.

``forward`` is the classic experiment of the blogs and of Glorot & Bengio (2010): push N(0, 1)
inputs through ``depth`` square layers and watch each layer's std hold, vanish, explode or
saturate. ``gradients`` (alias ``all``) also backpropagates a fixed random loss and records the
gradients' std per layer, the half that decides whether a deep net can train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from initbench.config.run import Config
from initbench.core.interfaces import Table
from initbench.core.runtime import check_memory, resolve_dtype
from initbench.core.stats import FORWARD_COLUMNS, first_nonfinite_layer, gradient_verdict, median_layer, verdict
from initbench.engines.base import Run
from initbench.engines.choice import STACKED, EngineChoice, select
from initbench.engines.lsuv_fit import Fits, subset_fits
from initbench.engines.module_net import ModuleNet
from initbench.engines.modules import RowStatistics, build_stack, check_initialization, model_failed, module_inputs
from initbench.engines.observe import StackedNet
from initbench.engines.stacked import StackedMLPNet, propagation_memory_estimate
from initbench.experiments.assemble import init_rules_summary, ruled_modules
from initbench.experiments.base import EXPERIMENTS, ExperimentResult, RunContext, build_runs
from initbench.experiments.propagation_theory import SchemeTheory, hidden_fans, scheme_theory
from initbench.render.lsuv_fits import fit_entries

GRADIENT_COLUMNS = ("grad_std", "weight_grad_std")
WEIGHT_COLUMNS = ("weight_mean", "weight_std")
THEORY_COLUMNS = ("theory_std", "theory_pre_std", "chi1")


@dataclass(frozen=True)
class ObservedRow:
    """What one row of the statistics observed: a layer of the MLP, a built-in block, or a module's call.

    ``fan_in`` is that of the weight the row reports (None for modules without one).
    """

    module: str
    module_type: str
    fan_in: int | None


@dataclass
class Measurement:
    """Per-run, per-row results: every array is ``[runs, rows]``, one row per observed point.

    ``stats`` holds FORWARD_COLUMNS and WEIGHT_COLUMNS, GRADIENT_COLUMNS when backpropagated, and
    ``centre_std`` for the cnn (the std at the image's centre pixel, over batch and channels).
    """

    runs: list[Run]
    stats: dict[str, np.ndarray]
    finite: np.ndarray
    histograms: list[list[tuple[np.ndarray, np.ndarray]]]  # [run][row] -> (edges, counts)
    points: list[ObservedRow]
    #: Which backend measured the runs, and why (summary.json's ``engine``).
    engine: EngineChoice
    #: Why the module backend ran the runs one at a time instead of together (None: together, or the fast engine).
    one_at_a_time: str | None = None
    #: How each LSUV run's layers were fitted (:mod:`initbench.engines.lsuv_fit`); empty without LSUV runs.
    fits: Fits = field(default_factory=dict)
    #: Which ``init.rules`` set each module (summary.json's ``init_rules``); None without rules.
    init_rules: dict[str, Any] | None = None
    #: Per run, whether the model's own output was finite (the module backend; None: the rows say it
    #: all). A user's forward can compute past its last observed module (``self.l(x) * scale``).
    output_finite: np.ndarray | None = None

    def __post_init__(self) -> None:
        # A run whose forward pass went non-finite has a non-finite loss: every gradient of it is
        # NaN, a result recorded as such, whatever the backward pass's arithmetic made of it
        # (ReLU's mask turns NaN into 0 in one backend, autograd keeps some finite in the other).
        broken = ~self.finite.all(axis=1) | (False if self.output_finite is None else ~self.output_finite)
        for column in GRADIENT_COLUMNS:
            if column in self.stats and broken.any():
                self.stats[column] = np.where(broken[:, None], np.nan, self.stats[column])

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
            points=self.points,
            engine=self.engine,
            one_at_a_time=self.one_at_a_time,
            fits=subset_fits(self.fits, labels),
            init_rules=self.init_rules,
            output_finite=None if self.output_finite is None else self.output_finite[indices],
        )


def build_net(config: Config, runs: list[Run], context: RunContext, engine: EngineChoice) -> StackedNet:
    """``runs`` of ``config``'s network on ``engine``'s backend: the plain MLP's layers, or every run's module stacked."""
    activation = config.model.build_activation()
    if engine.backend == STACKED:
        model = config.model
        return StackedMLPNet(runs, activation, context.device, context.dtype, config.input.batch, model.width, model.depth, model.bias)
    stack = build_stack(config, runs, context.device)
    x = module_inputs(config, runs, context.device)
    statistics = RowStatistics(activation, image_centre=config.model.arch == "cnn")
    failed = (lambda error: model_failed(config, x, error)) if config.model.arch == "module" else None
    return ModuleNet(stack, x, statistics, config.model.arch, ruled_modules(config, stack.base), init_rules_summary(config, stack.base), failed)


def measure_net(net: StackedNet, context: RunContext, backward: bool, engine: EngineChoice) -> Measurement:
    """Observe every row of ``net`` (and with ``backward`` backpropagate its loss): the one measurement
    loop of both engines, one ``[runs]`` observation per row into ``[runs, rows]`` arrays."""
    description, steps = net.task(backward)
    context.progress.start(description, total=steps)
    columns: dict[str, list[torch.Tensor]] = {}
    histograms: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in net.runs]
    points: list[ObservedRow] = []
    # torch.func.grad differentiates inside no_grad too: nothing here builds an autograd graph.
    with torch.no_grad():
        for observation in net.forward(backward, context.progress.advance):
            for name, values in observation.stats.items():
                columns.setdefault(name, []).append(values)
            for run_histograms, edges_counts in zip(histograms, observation.histograms, strict=True):
                run_histograms.append(edges_counts)
            points.append(ObservedRow(observation.label, observation.module_type, observation.fan_in))
        if backward:
            gradients: dict[str, list[torch.Tensor | None]] = {name: [None] * len(points) for name in GRADIENT_COLUMNS}
            for gradient in net.backward(context.progress.advance):
                gradients["grad_std"][gradient.row] = gradient.grad_std
                gradients["weight_grad_std"][gradient.row] = gradient.weight_grad_std
            columns.update(gradients)  # type: ignore[arg-type]
    arrays = {name: torch.stack(values, dim=1).cpu().numpy() for name, values in columns.items()}
    finite_array = arrays.pop("finite").astype(bool)
    notes = net.notes()
    return Measurement(net.runs, arrays, finite_array, histograms, points, engine, notes.one_at_a_time, notes.fits, notes.init_rules, notes.output_finite)


def module_memory_estimate(config: Config, runs: int, backward: bool) -> int:
    """Peak bytes of a module-backend pass over a built-in net (0 for a user's module, whose size is unknown
    until it is built).

    The forward pass reduces each call in its hook, so it holds a block's input, output and
    temporaries, about three tensors of ``runs·batch·features``, whatever the depth; the gradient
    pass keeps what autograd needs of every block, about six such tensors a block. Plus the
    stacked parameters (twice with the gradient pass: their gradients).
    """
    model = config.model
    if model.arch == "module":
        return 0
    element = torch.finfo(resolve_dtype(config.dtype)).bits // 8
    pixels = config.input.image_size**2 if model.arch == "cnn" else 1
    activations = runs * config.input.batch_size() * model.width * pixels * (6 * model.depth if backward else 3)
    kernel = 9 if model.arch == "cnn" else 1
    parameters = runs * model.depth * model.width * model.width * kernel * (2 if model.arch == "resmlp" else 1) * (2 if backward else 1)
    return (activations + parameters) * element


def nan_median(values: np.ndarray) -> float:
    """Median over seeds ignoring NaN seeds; NaN only when every seed is NaN."""
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan


def summarize(measurement: Measurement, theories: dict[str, SchemeTheory | str], config: Config) -> dict[str, dict[str, Any]]:
    """``summary.json``'s per-scheme entries: medians over seeds, verdicts and the theory."""
    depth = len(measurement.points)
    fans_hidden = hidden_fans(config)
    schemes: dict[str, dict[str, Any]] = {}
    for label in measurement.labels():
        indices = measurement.run_indices(label)
        per_seed = [first_nonfinite_layer(measurement.finite[index]) for index in indices]
        first = median_layer(per_seed)
        std = measurement.stats["std"][indices]
        std_last = nan_median(std[:, -1])
        scheme = measurement.runs[indices[0]].scheme
        variance = None if fans_hidden is None else scheme.weight_variance(*fans_hidden)
        entry: dict[str, Any] = {
            "first_nonfinite_layer": first,
            "first_nonfinite_layer_per_seed": per_seed,
            "std_first": nan_median(std[:, 0]),
            "std_last": std_last,
            "verdict": verdict(std_last, nan_median(measurement.stats["frac_saturated"][indices, -1]), first),
            "resolved_scheme": scheme.spec(),
            "weight_variance": variance,
            "sigma_w2": None if variance is None else variance * fans_hidden[0],  # type: ignore[index]
            "std_median_by_layer": [nan_median(std[:, layer]) for layer in range(depth)],
            **scheme.notes(),
        }
        if measurement.output_finite is not None and first is None:
            past_rows = int((~measurement.output_finite[indices]).sum())
            if past_rows:  # every observed module finite, the model's own output not: its forward computed it
                entry.update(output_nonfinite_seeds=past_rows, verdict="exploding")
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
    """``layer_stats.csv``: one row per (scheme, seed, observed point); theory cells empty where there is none.

    ``module`` and ``module_type`` name what the row observed; ``weight_mean``, ``weight_std`` and
    ``fan_in`` describe the weight it owns (empty for modules without one).
    """
    backward = "grad_std" in measurement.stats
    measured = FORWARD_COLUMNS + (("centre_std",) if "centre_std" in measurement.stats else ()) + WEIGHT_COLUMNS
    gradients = GRADIENT_COLUMNS if backward else ()
    predicted = THEORY_COLUMNS + (("theory_grad_std",) if backward else ())
    rows = []
    for index, run in enumerate(measurement.runs):
        prediction = theories[run.label]
        for layer, point in enumerate(measurement.points):
            values = tuple(float(measurement.stats[name][index, layer]) for name in measured)
            weight_values = values[-2:] if point.fan_in is not None else ("", "")
            grads = tuple(float(measurement.stats[name][index, layer]) for name in gradients)
            if isinstance(prediction, str):
                expected: tuple[Any, ...] = ("",) * len(predicted)
            else:
                expected = (float(prediction.prediction.post_std[layer]), float(prediction.prediction.pre_std[layer]), float(prediction.prediction.chi1[layer]))
                if backward:
                    expected += (float(prediction.grad_std[layer]),)
            fan_in = "" if point.fan_in is None else point.fan_in
            rows.append((run.label, activation_spec, run.seed, layer + 1, point.module, point.module_type, *values[:-2], *weight_values, fan_in, *grads, *expected))
    columns = ("scheme", "activation", "seed", "layer", "module", "module_type", *measured, "fan_in", *gradients, *predicted)
    return Table(columns=columns, rows=rows)


def histograms_table(measurement: Measurement) -> Table:
    """``histograms.csv``: every (scheme, seed, layer)'s histogram of φ(h), one row per bin."""
    rows = []
    for index, run in enumerate(measurement.runs):
        for layer, (edges, counts) in enumerate(measurement.histograms[index], start=1):
            for bin_index, count in enumerate(counts):
                rows.append((run.label, run.seed, layer, bin_index, float(edges[bin_index]), float(edges[bin_index + 1]), int(count)))
    return Table(columns=("scheme", "seed", "layer", "bin", "left", "right", "count"), rows=rows)


def propagation_summary(config: Config, measurement: Measurement, schemes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """summary.json: the per-scheme entries with each LSUV scheme's fits, the engine, and for the
    module backend how the runs went, the rows it observed and which ``init.rules`` set each module."""
    fitted = fit_entries(measurement.fits, measurement.runs, f"each run's input batch ({config.input.batch_size()} examples, the batch measured here)")
    for label, entry in fitted.items():
        schemes[label]["lsuv"] = entry
    summary: dict[str, Any] = {"experiment": config.experiment, "schemes": schemes, "engine": measurement.engine.as_json()}
    if measurement.engine.backend != STACKED:
        how = "together under torch.func.vmap" if measurement.one_at_a_time is None else f"one at a time: {measurement.one_at_a_time}"
        summary["backend"] = {"runs": how, "mode": "eval" if config.model.eval else "train"}
        summary["modules"] = [{"row": row, "module": point.module, "module_type": point.module_type, "fan_in": point.fan_in} for row, point in enumerate(measurement.points, start=1)]
        if measurement.init_rules is not None:
            summary["init_rules"] = measurement.init_rules
    return summary


class Propagation:
    """Shared by the forward and gradients experiments; ``backward`` says whether to backpropagate."""

    backward = False

    def check(self, config: Config, device: torch.device) -> None:
        runs = len(config.init.build_schemes()) * config.seeds
        dtype = resolve_dtype(config.dtype)
        if select(config).backend == STACKED:
            estimate = propagation_memory_estimate(runs, config.input.batch, config.model.width, config.model.depth, self.backward, dtype)
        else:
            estimate = module_memory_estimate(config, runs, self.backward)
        check_memory(estimate, device)
        stack = check_initialization(config)
        if stack is not None:
            # The inputs asked for, and whether a user's model takes them (one call, first seed):
            # refused here, before the run claims its directory.
            x = module_inputs(config, stack.runs, torch.device("cpu"))
            if config.model.arch == "module":
                with torch.no_grad():
                    try:
                        stack(x)
                    except Exception as error:
                        raise model_failed(config, x, error) from None

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        return self.analyse(config, self.measure(context, build_runs(config)))

    def measure(self, context: RunContext, runs: list[Run], engine: EngineChoice | None = None) -> Measurement:
        """Measure ``runs`` (of one or several configs that differ only in ``init``) in one stacked pass,
        on ``engine`` (None: the one :func:`~initbench.engines.choice.select` picks for the config)."""
        engine = select(context.config) if engine is None else engine
        return measure_net(build_net(context.config, runs, context, engine), context, self.backward, engine)

    def analyse(self, config: Config, measurement: Measurement) -> ExperimentResult:
        """Theory, summary and tables of a measurement of ``config``'s runs: the data that the
        reporter (:mod:`initbench.outputs.run_report`) draws the figures and summary.md from.

        Split from :meth:`measure` so that a sweep can measure many points in one stacked pass and
        then analyse each point's :meth:`Measurement.subset` exactly as its own run would.
        """
        activation = config.model.build_activation()
        theories = {
            label: scheme_theory(measurement.runs[measurement.run_indices(label)[0]], activation, config, len(measurement.points)) for label in measurement.labels()
        }
        return ExperimentResult(
            tables={"layer_stats.csv": layer_stats_table(measurement, theories, config.model.activation), "histograms.csv": histograms_table(measurement)},
            summary=propagation_summary(config, measurement, summarize(measurement, theories, config)),
        )


@EXPERIMENTS.register("forward")
class ForwardExperiment(Propagation):
    """Deep forward pass: per-layer activation mean, std, saturation and histograms, beside theory."""

    backward = False


@EXPERIMENTS.register("gradients", aliases=("all",))
class GradientsExperiment(Propagation):
    """The forward pass plus backpropagated gradient std per layer (dL/dh and dL/dW), beside theory."""

    backward = True
