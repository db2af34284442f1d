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
import zipfile
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
from initbench.render.lsuv_fits import fit_entries

if TYPE_CHECKING:
    from initbench.engines.base import Run

BOUNDARY_RESOLUTION = 200
#: Every run's predicted class on the decision-boundary grid (2-D classification only).
BOUNDARY_FILE = "decision_boundary.npz"
#: The dataset's sizes and chance level, and the steps evaluated.
TRAINING_FILE = "training.json"


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
        """The data of ``config``'s runs in ``record``: train_metrics.csv, summary.json, training.json
        (what the figures need of the dataset and the steps) and, for 2-D classification, every
        run's predictions on the decision-boundary grid (:data:`BOUNDARY_FILE`). The reporter
        (:mod:`initbench.outputs.run_report`) draws the figures and writes summary.md from them."""
        settings = self.settings(config)
        classify = record.dataset.task != "regression"
        labels = list(dict.fromkeys(run.label for run in record.runs))
        schemes = {label: scheme_entry(record, label, classify, settings.target_accuracy) for label in labels}
        for label, lsuv_entry in fit_entries(record.fits, record.runs, f"the training set's first {lsuv_batch_size(settings, record.dataset)} examples").items():
            schemes[label]["lsuv"] = lsuv_entry
        files = {} if record.model_states is None else {model_file(run): state_bytes(state) for run, state in zip(record.runs, record.model_states, strict=True)}
        if record.boundary is not None:
            files[BOUNDARY_FILE] = boundary_bytes(record)
        return ExperimentResult(
            tables={"train_metrics.csv": metrics_table(record, classify)},
            summary={"experiment": "train", "dataset": record.dataset.name, "task": record.dataset.task, "schemes": schemes}
            | ({} if record.init_rules is None else {"init_rules": record.init_rules})
            | {"engine": record.engine.as_json()},
            json_files={TRAINING_FILE: training_facts(record)},
            files=files,
        )

    def from_checkpoint(self, config: Config, state: dict[str, Any]) -> ExperimentResult:
        """The data of an unfinished run from the evaluations its checkpoint saved, as :meth:`analyse`
        gives for a finished one (final metrics: those of the last evaluation; no LSUV record, model
        files or decision boundaries, which only the end of a run writes). For ``initbench report``."""
        runs = build_runs(config)
        evaluations = [Evaluation(**fields) for fields in state["evaluations"]]
        record = TrainingRecord(
            runs=runs, dataset=self.load(config), evaluations=evaluations, diverged_at=list(state["trainer"]["diverged_at"]), boundary=None, engine=select(config)
        )
        return self.analyse(config, record)


def metric(evaluation: Evaluation, name: str, index: int) -> float:
    """Run ``index``'s ``name`` (loss, train_acc, test_acc) at ``evaluation``; NaN where there is none."""
    tensor = getattr(evaluation, name)
    return math.nan if tensor is None else float(tensor[index])


def recorded(record: TrainingRecord, index: int, evaluation: Evaluation) -> bool:
    """Whether run ``index`` has a row at ``evaluation``: a diverged run's curve ends at the first
    evaluation after it diverged."""
    diverged = record.diverged_at[index]
    previous = max((e.step for e in record.evaluations if e.step < evaluation.step), default=-1)
    return diverged is None or diverged > previous


def metrics_table(record: TrainingRecord, classify: bool) -> Table:
    """``train_metrics.csv``: one row per (evaluation, run) while the run is recorded; accuracies empty for regression."""
    rows = [
        (run.label, run.seed, evaluation.step, metric(evaluation, "loss", index),
         *((metric(evaluation, "train_acc", index), metric(evaluation, "test_acc", index)) if classify else ("", "")))
        for evaluation in record.evaluations
        for index, run in enumerate(record.runs)
        if recorded(record, index, evaluation)
    ]  # fmt: skip
    return Table(columns=("scheme", "seed", "step", "loss", "train_acc", "test_acc"), rows=rows)


def scheme_entry(record: TrainingRecord, label: str, classify: bool, target_accuracy: float | None) -> dict[str, Any]:
    """summary.json's entry of scheme ``label``: final metrics over its seeds, divergences, steps to target."""
    runs, evaluations = record.runs, record.evaluations
    indices = [index for index, run in enumerate(runs) if run.label == label]

    def final(name: str) -> dict[str, float]:
        """The final metric over the runs that finished; a diverged run's parameters are those it
        diverged with, so its predictions mean nothing (``diverged`` counts them)."""
        return nan_stats([math.nan if record.diverged_at[index] is not None else metric(evaluations[-1], name, index) for index in indices])

    entry: dict[str, Any] = {
        "loss": final("loss"),
        "diverged": sum(record.diverged_at[index] is not None for index in indices),
        "diverged_at_step": [record.diverged_at[index] for index in indices],
        "resolved_scheme": runs[indices[0]].scheme.spec(),
        **runs[indices[0]].scheme.notes(),
    }
    if record.model_states is not None:
        entry["model_files"] = [model_file(runs[index]) for index in indices]
    if classify:
        entry["train_acc"] = final("train_acc")
        entry["test_acc"] = final("test_acc")
        if target_accuracy is not None:
            reached = [
                next((e.step for e in evaluations if recorded(record, i, e) and metric(e, "test_acc", i) >= target_accuracy), None) for i in indices
            ]
            entry["target_accuracy"] = target_accuracy
            entry["steps_to_target"] = median_layer([step for step in reached if step is not None] or [None])  # of the seeds that reached it
            entry["steps_to_target_reached"] = sum(step is not None for step in reached)
            entry["steps_to_target_per_seed"] = reached
    return entry


def training_facts(record: TrainingRecord) -> dict[str, Any]:
    """``training.json``: what the figures and summary.md need beyond the metrics, the dataset's
    sizes and chance level (the share of its most frequent test class) and the steps evaluated."""
    dataset = record.dataset
    classify = dataset.task != "regression"
    return {
        "dataset": dataset.name,
        "task": dataset.task,
        "train_examples": len(dataset.x_train),
        "test_examples": len(dataset.x_test),
        "chance": float(np.bincount(dataset.y_test).max() / len(dataset.y_test)) if classify else None,
        "evaluated_steps": [evaluation.step for evaluation in record.evaluations],
    }


def boundary_bytes(record: TrainingRecord) -> bytes:
    """:data:`BOUNDARY_FILE`'s bytes: the grid's axes, every run's predicted class at its points
    ``[runs, points]`` with the run's scheme, seed and final test accuracy, and the training data."""
    assert record.boundary is not None
    final_accuracy = record.evaluations[-1].test_acc
    assert final_accuracy is not None
    return npz_bytes({
        "grid_x": record.boundary.grid_x[0], "grid_y": record.boundary.grid_y[:, 0], "predictions": record.boundary.predictions,
        "scheme": np.array([run.label for run in record.runs]), "seed": np.array([run.seed for run in record.runs]),
        "final_test_acc": final_accuracy.cpu().numpy(), "x_train": record.dataset.x_train, "y_train": record.dataset.y_train,
    })  # fmt: skip


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez_compressed``'s format, with every member dated 1980-01-01: the same arrays give
    the same bytes (numpy's own writer stamps the time of writing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()
