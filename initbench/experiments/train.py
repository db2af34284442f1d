"""Short training runs: what an init does to learning, for many schemes and seeds at once.

All runs (schemes × seeds) train together as one stacked model (:mod:`initbench.engines.training`), so a
comparison of many runs costs about as much as one. The classic case is the deeplearning.ai
"Initialization" exercise (``configs/circles_dlai.yaml``): zeros never breaks symmetry and stays
at chance, large random weights train slowly, He fits the circles.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from initbench.config.run import Config
from initbench.config.sections import TrainConfig
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import Table
from initbench.core.runtime import check_memory, resolve_dtype
from initbench.core.stats import median_layer
from initbench.data.base import Dataset
from initbench.data.loading import load_dataset
from initbench.engines.choice import STACKED, EngineChoice, select
from initbench.engines.lsuv_fit import Fits, fit_lsuv_runs, subset_fits
from initbench.engines.modules import build_stack, check_initialization
from initbench.engines.training import Evaluation, OptimizerSettings, StackedTrainer, mlp_trainer, training_memory_estimate
from initbench.experiments.assemble import init_rules_summary, ruled_modules
from initbench.experiments.base import EXPERIMENTS, ExperimentResult, RunContext, build_runs
from initbench.render.figures import decision_boundary_figure, training_curves_figure
from initbench.render.formatting import format_number, markdown_table, reached_text, rich_table
from initbench.render.lsuv_fits import report_fits

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from initbench.engines.base import Run

BOUNDARY_RESOLUTION = 200


def image_shape(config: Config, dataset: Dataset) -> tuple[int, ...] | None:
    """How one example is shaped for the model: (C, H, W) for the cnn, ``input.shape[1:]`` for a
    module that asks for it, None for a flat vector."""
    if config.model.arch == "cnn":
        if dataset.image_shape is None:
            raise InitbenchError(
                f"model.arch cnn trains on images, and dataset '{dataset.name}' has flat features.",
                hint="Use train.dataset=digits (8×8 images), or an mlp or resmlp.",
            )
        return dataset.image_shape
    if config.model.arch == "module" and config.input.shape is not None:
        return tuple(config.input.shape[1:])
    return None


def lsuv_batch_size(settings: TrainConfig, dataset: Dataset) -> int:
    """LSUV's batch in training: the training set's first ``batch_size`` examples, all of it for full-batch descent."""
    return settings.batch_size or len(dataset.x_train)



def widths_text(widths: list[int]) -> str:
    """Hidden widths short enough for a title: ``[10, 5]``, ``30 × 64``, or ``40 layers of 16–128 units``."""
    if len(widths) > 1 and len(set(widths)) == 1:
        return f"{len(widths)} × {widths[0]}"
    if len(widths) <= 6:
        return str(widths)
    return f"{len(widths)} layers of {min(widths)}–{max(widths)} units"

def evaluation_steps(steps: int, every: int) -> list[int]:
    """Steps at which metrics are recorded: 0, every ``every`` steps, and the last."""
    return sorted({*range(0, steps, every), steps})


def nan_stats(values: list[float]) -> dict[str, float]:
    """Median, min and max over seeds, ignoring non-finite (diverged) seeds; NaN only when all are."""
    finite = np.array([value for value in values if math.isfinite(value)])
    if finite.size == 0:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": float(np.median(finite)), "min": float(finite.min()), "max": float(finite.max())}


def boundary_grid(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """A BOUNDARY_RESOLUTION² grid over the data's 2-D range plus a 10% margin, for decision regions."""
    points = np.concatenate([dataset.x_train, dataset.x_test])
    low, high = points.min(axis=0), points.max(axis=0)
    margin = 0.1 * (high - low)
    axes = [np.linspace(low[dim] - margin[dim], high[dim] + margin[dim], BOUNDARY_RESOLUTION) for dim in (0, 1)]
    grid_x, grid_y = np.meshgrid(*axes)
    return grid_x, grid_y


@dataclass
class Boundary:
    """Each run's predicted class ``predictions [runs, points]`` at the points of a 2-D grid."""

    grid_x: np.ndarray
    grid_y: np.ndarray
    predictions: np.ndarray


@dataclass
class TrainingRecord:
    """What a training pass measured, per run: the evaluations, divergences and decision regions."""

    runs: list[Run]
    dataset: Dataset
    evaluations: list[Evaluation]  # at evaluation_steps(), final state last
    diverged_at: list[int | None]
    boundary: Boundary | None  # 2-D classification only
    engine: EngineChoice  # which backend trained the runs, and why (summary.json's engine)
    model_states: list[dict[str, torch.Tensor]] | None = None  # each run's final state_dict (train.save_models)
    fits: Fits = field(default_factory=dict)  # how each LSUV run's layers were fitted (initbench.engines.lsuv_fit)
    init_rules: dict[str, Any] | None = None  # which init.rules set each module (summary.json); None without rules

    def subset(self, labels: list[str]) -> TrainingRecord:
        """The runs of ``labels`` only, in this record's order: what training them alone records."""
        wanted = set(labels)
        indices = [index for index, run in enumerate(self.runs) if run.label in wanted]
        boundary = None if self.boundary is None else Boundary(self.boundary.grid_x, self.boundary.grid_y, self.boundary.predictions[indices])
        return TrainingRecord(
            runs=[self.runs[index] for index in indices],
            dataset=self.dataset,
            evaluations=[evaluation.subset(indices) for evaluation in self.evaluations],
            diverged_at=[self.diverged_at[index] for index in indices],
            boundary=boundary,
            engine=self.engine,
            model_states=None if self.model_states is None else [self.model_states[index] for index in indices],
            fits=subset_fits(self.fits, labels),
            init_rules=self.init_rules,
        )


def model_file(run: Run) -> str:
    """Where ``train.save_models`` writes a run's state_dict: ``models/<label>-seed<k>.pt``, the
    label with characters other than letters, digits, ``.``, ``_``, ``-`` replaced by ``_``
    (a path without ``:`` or ``,`` can be given to ``checkpoint:path=...``)."""
    return f"models/{re.sub(r'[^A-Za-z0-9._-]', '_', run.label)}-seed{run.seed}.pt"


def state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """``torch.save(state)``'s bytes: a plain state dict, loadable with ``torch.load(weights_only=True)``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_training(context: RunContext, trainer: StackedTrainer, evaluations: list[Evaluation]) -> None:
    """Checkpoint at an evaluation: the trainer's state before the step of the last evaluation."""
    if context.checkpoint is not None:
        state = {"evaluations": [vars(evaluation) for evaluation in evaluations], "trainer": trainer.state_dict()}
        context.checkpoint.save(state)


def resume_training(context: RunContext, trainer: StackedTrainer) -> tuple[list[Evaluation], int]:
    """The evaluations so far and the step to continue from: restored from the run's checkpoint, if any."""
    state = context.checkpoint.load() if context.checkpoint is not None else None
    if state is None:
        return [], 0
    trainer.load_state_dict(state["trainer"])
    evaluations = [Evaluation(**fields) for fields in state["evaluations"]]
    return evaluations, evaluations[-1].step


@EXPERIMENTS.register("train")
class TrainExperiment:
    """Short training runs of every scheme × seed, batched: curves, final accuracy, decision boundaries."""

    def settings(self, config: Config) -> TrainConfig:
        assert config.train is not None  # Config fills it in for experiment: train
        return config.train

    def load(self, config: Config) -> Dataset:
        dataset = load_dataset(self.settings(config).dataset, self.settings(config).data_seed)
        batch_size = self.settings(config).batch_size
        if batch_size is not None and batch_size > len(dataset.x_train):
            raise InitbenchError(
                f"train.batch_size {batch_size} is larger than the training set ({len(dataset.x_train)} examples).",
                hint="Use a smaller batch_size, or null for full-batch gradient descent.",
            )
        return dataset

    def check(self, config: Config, device: torch.device) -> None:
        dataset = self.load(config)
        settings = self.settings(config)
        two_d_classes = dataset.input_dim == 2 and dataset.task != "regression"
        estimate = training_memory_estimate(
            runs=len(config.init.build_schemes()) * config.seeds,
            sizes=[dataset.input_dim, *config.model.hidden_widths(), dataset.output_dim],
            n_train=len(dataset.x_train),
            n_test=len(dataset.x_test),
            batch_size=settings.batch_size,
            optimizer=settings.optimizer,
            momentum=settings.momentum,
            evaluations=settings.steps // settings.eval_every + 2,
            grid_points=BOUNDARY_RESOLUTION**2 if two_d_classes else 0,
            dtype=resolve_dtype(config.dtype),
        )
        check_memory(estimate, device, hint="Reduce model.width, model.depth (or model.hidden), the number of schemes or seeds, the dataset, or train.steps per train.eval_every.")
        check_initialization(config, outputs=dataset.output_dim, inputs=self.model_inputs(config, dataset))

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        return self.analyse(config, self.measure(context, build_runs(config)))

    @staticmethod
    def model_inputs(config: Config, dataset: Dataset) -> int | None:
        """The built-in net's input features (channels for the cnn) on ``dataset``; None for a user's module."""
        if config.model.arch == "module":
            return None
        shape = image_shape(config, dataset)
        return shape[0] if shape is not None else dataset.input_dim

    def measure(self, context: RunContext, runs: list[Run], engine: EngineChoice | None = None) -> TrainingRecord:
        """Train ``runs`` together with ``context.config``'s settings on ``engine`` (None: the one
        :func:`~initbench.engines.choice.select` picks) and record what happened.

        The runs may come from several sweep points whose configs differ only in ``init``: each
        trains exactly as it would alone, and :meth:`TrainingRecord.subset` splits the record.
        """
        config = context.config
        settings = self.settings(config)
        dataset = self.load(config)
        dtype = resolve_dtype(config.dtype)
        input_shape = image_shape(config, dataset)
        optimizer = OptimizerSettings(
            optimizer=settings.optimizer, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay, batch_size=settings.batch_size
        )
        engine = select(config) if engine is None else engine
        fits: Fits = {}
        init_rules = None
        if engine.backend == STACKED:
            trainer = mlp_trainer(runs, dataset, config.model.hidden_widths(), config.model.build_activation(), config.model.bias, context.device, dtype, optimizer)
        else:
            model = build_stack(config, runs, context.device, outputs=dataset.output_dim, inputs=self.model_inputs(config, dataset))
            init_rules = init_rules_summary(config, model.base)
            trainer = StackedTrainer(runs, dataset, model, context.device, dtype, optimizer, input_shape)
            fits = fit_lsuv_runs(model, trainer.stacked(trainer.x_train[: lsuv_batch_size(settings, dataset)]), ruled_modules(config, model.base))
        checkpoints = evaluation_steps(settings.steps, settings.eval_every)
        evaluations, start = resume_training(context, trainer)
        context.progress.start(f"training {len(runs)} runs", total=settings.steps)
        context.progress.advance(start)
        for step in range(start, settings.steps + 1):
            if step in checkpoints and not (evaluations and evaluations[-1].step == step):
                evaluations.append(latest := trainer.evaluate(step))
                save_training(context, trainer, evaluations)
                accuracy = {} if latest.test_acc is None else {"test acc": float(latest.test_acc.nanmedian())}
                context.progress.update(loss=float(latest.loss.nanmedian()), **accuracy)
            if step < settings.steps:
                trainer.step(step)
                context.progress.advance()
        boundary = None
        if dataset.input_dim == 2 and dataset.task != "regression":
            grid_x, grid_y = boundary_grid(dataset)
            predictions = trainer.predict_grid(torch.as_tensor(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1))).cpu().numpy()
            boundary = Boundary(grid_x, grid_y, predictions)
        # save_models keeps these runs on the module backend (engines.select), whose stack names each run's tensors.
        states = [trainer.model.run_state_dict(index) for index in range(len(runs))] if settings.save_models else None  # type: ignore[attr-defined]
        return TrainingRecord(
            runs=runs, dataset=dataset, evaluations=evaluations, diverged_at=list(trainer.diverged_at), boundary=boundary, engine=engine,
            model_states=states, fits=fits, init_rules=init_rules,
        )

    def analyse(self, config: Config, record: TrainingRecord) -> ExperimentResult:
        """Curves, summary, tables and figures of ``config``'s runs in ``record``."""
        dataset, evaluations = record.dataset, record.evaluations
        settings = self.settings(config)
        runs = record.runs
        labels = list(dict.fromkeys(run.label for run in runs))
        classify = dataset.task != "regression"

        def value(evaluation: Evaluation, metric: str, index: int) -> float:
            tensor = getattr(evaluation, metric)
            return math.nan if tensor is None else float(tensor[index])

        def final_value(metric: str, index: int) -> float:
            """The final metric of a run that finished; NaN for a diverged one (its parameters
            are those it diverged with, so its predictions mean nothing): the summary's medians
            are over the runs that finished, and ``diverged`` counts the others."""
            return math.nan if record.diverged_at[index] is not None else value(evaluations[-1], metric, index)

        def recorded(index: int, evaluation: Evaluation) -> bool:
            """A diverged run's curve ends at the first evaluation after it diverged."""
            diverged = record.diverged_at[index]
            previous = max((e.step for e in evaluations if e.step < evaluation.step), default=-1)
            return diverged is None or diverged > previous

        rows = [
            (run.label, run.seed, evaluation.step, value(evaluation, "loss", index),
             *((value(evaluation, "train_acc", index), value(evaluation, "test_acc", index)) if classify else ("", "")))
            for evaluation in evaluations
            for index, run in enumerate(runs)
            if recorded(index, evaluation)
        ]
        steps = np.array([evaluation.step for evaluation in evaluations])
        schemes: dict[str, dict[str, Any]] = {}
        curves: dict[str, dict[str, np.ndarray]] = {}
        for label in labels:
            indices = [index for index, run in enumerate(runs) if run.label == label]
            entry: dict[str, Any] = {
                "loss": nan_stats([final_value("loss", index) for index in indices]),
                "diverged": sum(record.diverged_at[index] is not None for index in indices),
                "diverged_at_step": [record.diverged_at[index] for index in indices],
                "resolved_scheme": runs[indices[0]].scheme.spec(),
                **runs[indices[0]].scheme.notes(),
            }
            if record.model_states is not None:
                entry["model_files"] = [model_file(runs[index]) for index in indices]
            curve = {"loss": np.array([[value(e, "loss", i) if recorded(i, e) else math.nan for e in evaluations] for i in indices])}
            if classify:
                entry["train_acc"] = nan_stats([final_value("train_acc", index) for index in indices])
                entry["test_acc"] = nan_stats([final_value("test_acc", index) for index in indices])
                curve["test_acc"] = np.array([[value(e, "test_acc", i) if recorded(i, e) else math.nan for e in evaluations] for i in indices])
                if settings.target_accuracy is not None:
                    reached = [
                        next((e.step for e in evaluations if recorded(i, e) and value(e, "test_acc", i) >= settings.target_accuracy), None)
                        for i in indices
                    ]
                    entry["target_accuracy"] = settings.target_accuracy
                    entry["steps_to_target"] = median_layer([step for step in reached if step is not None] or [None])  # of the seeds that reached it
                    entry["steps_to_target_reached"] = sum(step is not None for step in reached)
                    entry["steps_to_target_per_seed"] = reached
            schemes[label] = entry
            curves[label] = curve

        network = {
            "mlp": f"hidden {widths_text(config.model.hidden_widths())}", "resmlp": f"{config.model.depth} residual blocks × {config.model.width}",
            "cnn": f"{config.model.depth} conv layers × {config.model.width} channels", "module": str(config.model.factory),
        }[config.model.arch]
        norm = "" if config.model.norm == "none" else f", {config.model.norm}"
        fitted = report_fits(record.fits, runs, f"the training set's first {lsuv_batch_size(settings, dataset)} examples")
        for label, lsuv_entry in fitted.entries.items():
            schemes[label]["lsuv"] = lsuv_entry
        title = f"{dataset.name}: {network}, {config.model.activation}{norm}, {settings.optimizer} lr {settings.lr}, {settings.steps} steps"
        chance = float(np.bincount(dataset.y_test).max() / len(dataset.y_test)) if classify else None  # always the most frequent class
        figures = {"training_curves.png": training_curves_figure(steps, curves, title, schemes, chance)}
        if record.boundary is not None:
            figures["decision_boundary.png"] = self.boundary_figure(record, labels, title, schemes)

        columns = ("scheme", "train acc", "test acc", "loss", "steps to target", "diverged") if classify else ("scheme", "loss", "diverged")
        table_rows = [
            (label, entry["train_acc"]["median"], entry["test_acc"]["median"], entry["loss"]["median"],
             reached_text(entry["steps_to_target_per_seed"]) if "steps_to_target_per_seed" in entry else None, f"{entry['diverged']}/{config.seeds}")
            if classify
            else (label, entry["loss"]["median"], f"{entry['diverged']}/{config.seeds}")
            for label, entry in schemes.items()
        ]
        seeds = f"median over {config.seeds} seeds" if config.seeds > 1 else f"seed {config.seed}"
        target = f" (test accuracy ≥ {settings.target_accuracy})" if classify and settings.target_accuracy is not None else ""
        report = "\n\n".join(
            [
                f"Training on {dataset.name} ({len(dataset.x_train)} train, {len(dataset.x_test)} test, {dataset.task}); "
                f"final metrics at step {settings.steps} ({seeds}); steps to target{target}.",
                markdown_table(columns, table_rows),
                *fitted.paragraphs,
                "![Training curves](training_curves.png)",
                *(["![Decision boundaries](decision_boundary.png)"] if "decision_boundary.png" in figures else []),
            ]
        )
        return ExperimentResult(
            tables={"train_metrics.csv": Table(columns=("scheme", "seed", "step", "loss", "train_acc", "test_acc"), rows=rows)},
            summary={"experiment": "train", "dataset": dataset.name, "task": dataset.task, "schemes": schemes}
            | ({} if record.init_rules is None else {"init_rules": record.init_rules})
            | {"engine": record.engine.as_json()},
            figures=figures,
            report=report,
            console_tables=[rich_table(f"After {settings.steps} steps ({seeds})", columns, table_rows), *fitted.warnings],
            files={} if record.model_states is None else {model_file(run): state_bytes(state) for run, state in zip(runs, record.model_states, strict=True)},
        )

    def boundary_figure(self, record: TrainingRecord, labels: list[str], title: str, schemes: dict[str, dict[str, Any]]) -> Figure:
        """Decision regions of each scheme's median seed (by final test accuracy, among the seeds
        that did not diverge, as the table's median) over the data; its title names the seed."""
        assert record.boundary is not None
        final_accuracy = record.evaluations[-1].test_acc
        assert final_accuracy is not None
        regions = {}
        for label in labels:
            indices = [index for index, run in enumerate(record.runs) if run.label == label]
            finished = [index for index in indices if record.diverged_at[index] is None] or indices
            ranked = sorted(finished, key=lambda index: float(final_accuracy[index]))
            median_run = ranked[(len(ranked) - 1) // 2]
            shown, median = float(final_accuracy[median_run]), schemes[label]["test_acc"]["median"]
            name = f"{label}\nseed {record.runs[median_run].seed}: test acc {format_number(shown)}" + (
                "" if shown == median else f" (median {format_number(median)})"
            )
            regions[name] = record.boundary.predictions[median_run].reshape(record.boundary.grid_x.shape)
        grid_x, grid_y = record.boundary.grid_x, record.boundary.grid_y
        return decision_boundary_figure(record.dataset.x_train, record.dataset.y_train, grid_x, grid_y, regions, title)
