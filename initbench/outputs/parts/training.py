"""The training report, from train_metrics.csv, summary.json, training.json and (2-D
classification) decision_boundary.npz: the curves and decision-boundary figures, summary.md, the
terminal table and the report's table of final metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from initbench.experiments.train import BOUNDARY_FILE, TRAINING_FILE
from initbench.outputs.parts.common import Saved, by_scheme_and_seed
from initbench.render.figures import decision_boundary_figure, training_curves_figure
from initbench.render.formatting import format_number, markdown_table, reached_text, rich_table
from initbench.render.lsuv_fits import fit_paragraphs, fit_warnings
from initbench.runs.results import SUMMARY, damaged, read_arrays

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from initbench.config.run import Config
    from initbench.outputs.document import Report

#: What the report reads of summary.json's entry per scheme (:meth:`Saved.schemes`).
SCHEME_KEYS = {"loss": ("median",), "diverged": None, "diverged_at_step": None}
ACCURACY_KEYS = {"train_acc": ("median",), "test_acc": ("median",)}

#: The arrays decision_boundary.npz holds (:func:`initbench.experiments.train.boundary_bytes`).
BOUNDARY_ARRAYS = ("grid_x", "grid_y", "scheme", "seed", "final_test_acc", "predictions", "x_train", "y_train")


def widths_text(widths: list[int]) -> str:
    """Hidden widths short enough for a title: ``[10, 5]``, ``30 × 64``, or ``40 layers of 16–128 units``."""
    if len(widths) > 1 and len(set(widths)) == 1:
        return f"{len(widths)} × {widths[0]}"
    if len(widths) <= 6:
        return str(widths)
    return f"{len(widths)} layers of {min(widths)}–{max(widths)} units"


def figure_title(config: Config, dataset: str) -> str:
    """The figures' title: dataset, network, optimizer and steps."""
    model, settings = config.model, config.train
    assert settings is not None
    network = {
        "mlp": f"hidden {widths_text(model.hidden_widths())}", "resmlp": f"{model.depth} residual blocks × {model.width}",
        "cnn": f"{model.depth} conv layers × {model.width} channels", "module": str(model.factory),
    }[model.arch]  # fmt: skip
    norm = "" if model.norm == "none" else f", {model.norm}"
    return f"{dataset}: {network}, {model.activation}{norm}, {settings.optimizer} lr {settings.lr}, {settings.steps} steps"


def final_rows(saved: Saved, classify: bool) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The final metrics per scheme: medians over the seeds that did not diverge, steps to target, divergences."""
    seeds = saved.result.config.get("seeds", 1)
    if not classify:
        return ("scheme", "loss", "diverged"), [(label, entry["loss"]["median"], f"{entry['diverged']}/{seeds}") for label, entry in saved.result.schemes.items()]
    columns = ("scheme", "train acc", "test acc", "loss", "steps to target", "diverged")
    rows = [
        (label, entry["train_acc"]["median"], entry["test_acc"]["median"], entry["loss"]["median"],
         reached_text(entry["steps_to_target_per_seed"]) if "steps_to_target_per_seed" in entry else None, f"{entry['diverged']}/{seeds}")
        for label, entry in saved.result.schemes.items()
    ]  # fmt: skip
    return columns, rows


def curves(saved: Saved, steps: list[int], classify: bool) -> dict[str, dict[str, np.ndarray]]:
    """label → metric → ``[seeds, len(steps)]``: NaN where a run has no row (after it diverged)."""
    rows = saved.result.tables.get("train_metrics.csv", [])
    by_label: dict[str, dict[str, np.ndarray]] = {}
    for metric in ("loss", "test_acc") if classify else ("loss",):
        for label, values in by_scheme_and_seed(rows, metric, "step", steps).items():
            by_label.setdefault(label, {})[metric] = values
    return by_label


def boundary_figure(saved: Saved, title: str) -> Figure | None:
    """Decision regions of each scheme's median seed (by final test accuracy, among the seeds that
    did not diverge, as the table's median) over the training data; its title names the seed."""
    path = saved.result.path / BOUNDARY_FILE
    if not path.is_file():
        return None
    arrays = read_arrays(path, BOUNDARY_ARRAYS)
    grid_x, grid_y = np.meshgrid(arrays["grid_x"], arrays["grid_y"])
    check_boundary_arrays(path, arrays, saved.result.schemes, grid_x.size)
    regions = {}
    for label, entry in saved.result.schemes.items():
        indices = [index for index, scheme in enumerate(arrays["scheme"]) if scheme == label]  # its seeds, in the summary's order
        finished = [index for index, step in zip(indices, entry["diverged_at_step"], strict=True) if step is None] or indices
        median_run = sorted(finished, key=lambda index: float(arrays["final_test_acc"][index]))[(len(finished) - 1) // 2]
        shown, median = float(arrays["final_test_acc"][median_run]), entry["test_acc"]["median"]
        name = f"{label}\nseed {int(arrays['seed'][median_run])}: test acc {format_number(shown)}" + ("" if shown == median else f" (median {format_number(median)})")
        regions[name] = arrays["predictions"][median_run].reshape(grid_x.shape)
    return decision_boundary_figure(arrays["x_train"], arrays["y_train"], grid_x, grid_y, regions, title)


def check_boundary_arrays(path: Path, arrays: dict[str, np.ndarray], schemes: dict[str, dict[str, Any]], cells: int) -> None:
    """That decision_boundary.npz holds one run per seed of each scheme of the summary, each
    with a prediction per grid cell, and the training data with a label per point."""
    runs = len(arrays["scheme"])
    if any(len(arrays[name]) != runs for name in ("seed", "final_test_acc", "predictions")) or arrays["predictions"].size != runs * cells:
        raise damaged(path, f"its runs' arrays do not hold one row of {cells} grid predictions for each of its {runs} runs")
    if len(arrays["x_train"]) != len(arrays["y_train"]):
        raise damaged(path, "its x_train and y_train differ in length")
    for label, entry in schemes.items():
        if sum(scheme == label for scheme in arrays["scheme"]) != len(entry.get("diverged_at_step") or []):
            raise damaged(path, f"it holds not one run per seed of {label}, as summary.json does")


def summary_sections(saved: Saved, facts: dict[str, Any], classify: bool, figures: list[str]) -> list[str]:
    """summary.md's paragraphs, table and figure links."""
    read = saved.config.train if saved.config is not None else None
    target_accuracy = saved.result.config.get("train", {}).get("target_accuracy") if read is None else read.target_accuracy
    target = f" (test accuracy ≥ {target_accuracy})" if classify and target_accuracy is not None else ""
    links = {"training_curves.png": "![Training curves](training_curves.png)", "decision_boundary.png": "![Decision boundaries](decision_boundary.png)"}
    return [
        (
            f"Training on {facts['dataset']} ({facts['train_examples']} train, {facts['test_examples']} test, {facts['task']}); "
            f"final metrics at step {facts['evaluated_steps'][-1]} ({saved.seeds_text()}); steps to target{target}."
        ),
        markdown_table(*final_rows(saved, classify)),
        *fit_paragraphs(saved.result.schemes),
        *(links[name] for name in figures),
    ]


def train_part(saved: Saved, report: Report) -> None:
    """The training report: final metrics, the curves and the decision boundaries, summary.md and the terminal table."""
    result = saved.result
    if not saved.has_files(("train_metrics.csv", SUMMARY, TRAINING_FILE), report):
        return
    facts = result.json_files[TRAINING_FILE]
    classify = facts["task"] != "regression"
    schemes = saved.schemes(SCHEME_KEYS | (ACCURACY_KEYS if classify else {}))
    columns, rows = final_rows(saved, classify)
    report.tables["Final metrics"] = ("summary.csv", columns, rows, "Medians over the seeds that did not diverge.")
    title = f"{result.config.get('name', '')}: {facts['dataset']}" if saved.config is None else figure_title(saved.config, facts["dataset"])
    steps = facts["evaluated_steps"]
    report.add_figure(
        "training_curves.png",
        training_curves_figure(np.array(steps), curves(saved, steps, classify), title, schemes, facts["chance"]),
        "Training loss and test accuracy against step: median over seeds, min–max, chance (dotted)",
    )
    boundaries = boundary_figure(saved, title)
    if boundaries is not None:
        report.add_figure("decision_boundary.png", boundaries, "Decision boundaries of each scheme's median seed")
    report.set_summary(summary_sections(saved, facts, classify, list(report.figures)))
    report.console = [rich_table(f"After {facts['evaluated_steps'][-1]} steps ({saved.seeds_text()})", columns, rows), *fit_warnings(schemes)]
