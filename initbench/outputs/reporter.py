"""``initbench report DIR``: a saved directory's tables and figures, rebuilt from its files.

Works on a run, compare or probe directory (one run directory each, a sweep's points included)
and on a sweep directory (:mod:`initbench.runs.sweeps.collect` merges its points). Nothing is run
again: figures come from the :mod:`initbench.render.figures` builders fed with the saved CSV data, tables
from ``summary.json`` and the CSVs. The report goes into a new folder inside DIR,
``report-<time>`` (``-1``, ``-2``, ... while taken), claimed and written like a run directory, so
it never overwrites anything. It holds ``report.md``, ``report.html`` (one self-contained page:
:mod:`initbench.render.html`), the figures, and ``summary.csv`` and ``theory.csv``.

One figure cannot be rebuilt: a training run's decision boundaries need the trained models'
predictions, which no file holds; the report embeds the run's own ``decision_boundary.png``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from initbench.core.errors import InitbenchError
from initbench.render import html as html_report
from initbench.render.formatting import display_layers, markdown_table, reached_text
from initbench.runs.results import RunResult
from initbench.runs.rundir import RunDirectory, command_line, opening_meta
from initbench.runs.sweepdir import SweepDirectory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from initbench.runs.sweeps.collect import SweepReport

REPORT = "report"
#: A report folder's config.yaml says what it reports on; reporting on a report is refused.
REPORT_OF = "report_of"


@dataclass
class Report:
    """A report's content, in memory: what both report.md and report.html show.

    ``tables`` maps a heading to ``(file name, columns, rows, note)``; ``figures`` maps a PNG's file
    name to ``(its bytes, caption)``.
    """

    title: str
    subtitle: str
    config_text: str
    environment: dict[str, Any]
    tables: dict[str, tuple[str, Sequence[str], list[Sequence[Any]], str]] = field(default_factory=dict)
    figures: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_figure(self, name: str, figure: Figure, caption: str) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)  # as RunDirectory.write_figure
        self.figures[name] = (buffer.getvalue(), caption)

    def markdown(self) -> str:
        sections = [f"# {self.title}", self.subtitle, *self.notes]
        for heading, (_, columns, rows, note) in self.tables.items():
            sections += [f"## {heading}", *([note] if note else []), markdown_table(columns, rows)]
        sections += [f"![{caption}]({name})" for name, (_, caption) in self.figures.items()]
        return "\n\n".join(sections) + "\n"

    def html(self) -> str:
        sections = [("About", "".join(html_report.paragraph(note, note=True) for note in self.notes))] if self.notes else []
        sections.append(("Config", html_report.preformatted(self.config_text)))
        for heading, (_, columns, rows, note) in self.tables.items():
            sections.append((heading, (html_report.paragraph(note, note=True) if note else "") + html_report.table(columns, rows)))
        if self.figures:
            sections.append(("Figures", "\n".join(html_report.figure(name, png, caption) for name, (png, caption) in self.figures.items())))
        sections.append(("Environment", html_report.mapping_table(self.environment)))
        return html_report.page(self.title, self.subtitle, sections)


def write(report: Report, of: Path, out: Path | None, extra_meta: dict[str, Any] | None = None) -> RunDirectory:
    """Claim the report folder (``out``, or a new ``report-<time>`` inside ``of``) and write ``report`` there."""
    from initbench.core.interfaces import Table
    from initbench.runs.runner import recorded

    meta = opening_meta("cpu", "-", command_line(), extra_meta)
    directory = RunDirectory.create(out, REPORT, yaml.safe_dump({REPORT_OF: str(of)}), meta, of)
    with recorded([directory]):
        for file_name, columns, rows, _ in report.tables.values():
            directory.write_csv(file_name, Table(tuple(columns), [tuple("" if value is None else value for value in row) for row in rows]))
        for name, (png, _) in report.figures.items():
            directory.write_bytes(name, png)
        directory.write_text("report.md", report.markdown())
        directory.write_text("report.html", report.html())
    return directory


@dataclass
class Written:
    """A report written: its folder, its content, and for a sweep what was merged."""

    directory: RunDirectory
    report: Report
    sweep: SweepReport | None = None


def report_directory(path: Path, out: Path | None) -> Written:
    """Write the report of the run or sweep directory ``path`` (into ``out``, or a new folder inside it)."""
    if not path.exists():
        raise InitbenchError(f"{path} does not exist.", hint="Give the directory a run, compare, probe or sweep wrote (its --out, or results/<name>-<time>).")
    if not path.is_dir():
        raise InitbenchError(f"{path} is a file, not a run or sweep directory.", hint="Give the directory a run, compare, probe or sweep wrote (its --out, or results/<name>-<time>).")
    if SweepDirectory.is_sweep(path):
        from initbench.runs.sweeps import collect

        merged = collect(path)
        report = sweep_report(merged)
        return Written(write(report, path, out, {"complete": merged.complete, "missing": len(merged.missing)}), report, merged)
    if not (path / RunDirectory.META).is_file():
        raise InitbenchError(
            f"{path} is neither a run nor a sweep directory: it has no meta.json or sweep.json.",
            hint="Give the directory a run, compare, probe or sweep wrote (its --out, or results/<name>-<time>).",
        )
    result = RunResult.load(path)
    if REPORT_OF in result.config:
        raise InitbenchError(f"{path} is a report (of {result.config[REPORT_OF]}).", hint=f"Run `initbench report {result.config[REPORT_OF]}` for a new one.")
    report = run_report(result)
    return Written(write(report, path, out, {REPORT_OF: str(path)}), report)


# --- A run directory ---------------------------------------------------------------------------


def run_report(result: RunResult) -> Report:
    """The report of one run directory, by its experiment."""
    builders: dict[str, Callable[[RunResult, Report], None]] = {
        "forward": propagation_part, "gradients": propagation_part, "all": propagation_part,
        "train": train_part, "gain": gain_part, "phase": phase_part,
    }  # fmt: skip
    builders["recommend"] = recommend_part
    # recommend's directory holds the forward config of its rules; its summary says what it is.
    experiment = "recommend" if (result.summary or {}).get("experiment") == "recommend" else result.experiment
    if experiment not in builders:
        raise InitbenchError(f"{result.path}: no report for experiment '{experiment}'.", hint=f"Reports cover: {', '.join(builders)}.")
    name = result.config.get("name", result.path.name)
    status = result.status
    report = Report(
        title=f"initbench {experiment}: {name}",
        subtitle=f"Directory {result.path} (status {status}); rebuilt from its files by initbench report.",
        config_text=(result.path / RunDirectory.CONFIG).read_text(),
        environment=result.meta,
    )
    if status != "complete":
        report.notes.append(f"This run is {status}, not complete: its files may hold only part of the results, or none.")
    builders[experiment](result, report)
    return report


def numbers(values: Sequence[Any]) -> np.ndarray:
    """CSV cells as floats; empty cells (None) become NaN."""
    return np.array([math.nan if value is None else float(value) for value in values], dtype=float)


def by_scheme_and_seed(rows: list[dict[str, Any]], column: str, index: str) -> dict[str, np.ndarray]:
    """label → ``[seeds, len(index values)]`` array of ``column``, from long-format rows (NaN where a row is missing)."""
    positions = {value: number for number, value in enumerate(dict.fromkeys(row[index] for row in rows))}
    grouped: dict[str, dict[Any, dict[Any, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["scheme"], {}).setdefault(row["seed"], {})[row[index]] = row[column]
    arrays = {}
    for label, seeds in grouped.items():
        values = np.full((len(seeds), len(positions)), math.nan)
        for seed_row, per_index in enumerate(seeds.values()):
            for key, value in per_index.items():
                values[seed_row, positions[key]] = math.nan if value is None else float(value)
        arrays[label] = values
    return arrays


def nan_median(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan


def propagation_part(result: RunResult, report: Report) -> None:
    """The forward (and gradients) report: summary tables, measured against theory, the figures."""
    from initbench.config.loading import validate_config
    from initbench.experiments.propagation import describe, terminal_rows
    from initbench.render.figures import histograms_figure, std_by_layer_figure

    rows = result.layer_stats
    if not rows or not result.schemes:
        report.notes.append("No layer_stats.csv or summary.json: nothing to report.")
        return
    first_seed: dict[str, Any] = {}  # the run's histograms figure shows each scheme's first seed
    for row in rows:
        first_seed.setdefault(row["scheme"], row["seed"])
    depth = max(row["layer"] for row in rows)
    backward = "grad_std" in rows[0]
    report.tables["Activation std by layer"] = ("summary.csv", *terminal_rows(result.schemes, depth), "Median over seeds; theory: mean-field prediction.")
    if backward:
        report.tables["Gradient std by layer"] = ("summary_gradients.csv", *terminal_rows(result.schemes, depth, gradients=True), "")
    report.tables["Measured against theory"] = ("theory.csv", *theory_rows(rows, display_layers(depth), backward), (
        "Median over seeds of the measured std beside the mean-field prediction (layer_stats.csv's theory columns), "
        "at the first, quarter, middle, three-quarter and last layers; empty where the scheme has no prediction."
    ))

    try:  # the run's own figure titles, from its config as this version reads it
        name = describe(validate_config(result.config, str(result.path / RunDirectory.CONFIG)))
    except InitbenchError:  # nothing runs in a report: a plugin not importable here, or an older config, still reports
        name = str(result.config.get("name", result.path.name))
    module = result.config.get("model", {}).get("arch") == "module"
    row_names = [row["module"] for row in rows if row["scheme"] == rows[0]["scheme"] and row["seed"] == rows[0]["seed"]] if module else None
    centre = "centre_std" in rows[0]
    theory = {label: values[0] for label, values in by_scheme_and_seed(rows, "theory_std", "layer").items() if np.isfinite(values[0]).any()}
    report.add_figure(
        "std_by_layer.png",
        std_by_layer_figure(
            by_scheme_and_seed(rows, "centre_std" if centre else "std", "layer"),
            "std of φ(h) at the image centre" if centre else "std of each module's output" if module else "std of activations φ(h)",
            f"Activation std by layer: {name}", theory=theory, row_names=row_names,
        ),
        "Activation std by layer: median over seeds (line), min–max (band), mean-field theory (dashed)",
    )
    histograms = result.tables.get("histograms.csv", [])
    if histograms:
        report.add_figure(
            "histograms.png",
            histograms_figure(histogram_inputs(histograms, first_seed, display_layers(depth)), f"Activations φ(h) at init, seed {result.config.get('seed', 0)}: {name}"),
            "Activation histograms of the first seed",
        )
    if backward:
        grad_theory = {label: values[0] for label, values in by_scheme_and_seed(rows, "theory_grad_std", "layer").items() if np.isfinite(values[0]).any()}
        report.add_figure(
            "grad_std_by_layer.png",
            std_by_layer_figure(by_scheme_and_seed(rows, "grad_std", "layer"), "std of dLoss/dh", f"Gradient std by layer: {name}", theory=grad_theory, row_names=row_names),
            "Gradient std by layer: median over seeds, min–max, mean-field theory (dashed)",
        )


def histogram_inputs(rows: list[dict[str, Any]], first_seed: dict[str, Any], layers: Sequence[int]) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """histograms.csv's bins back into :func:`histograms_figure`'s label → layer → (edges, counts), for one seed."""
    bins: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for row in rows:
        if row["layer"] in layers and row["seed"] == first_seed.get(row["scheme"]):
            bins.setdefault(row["scheme"], {}).setdefault(row["layer"], []).append(row)
    return {
        label: {
            layer: (numbers([row["left"] for row in ordered] + [ordered[-1]["right"]]), np.array([row["count"] for row in ordered]))
            for layer, per_layer in per_label.items()
            for ordered in [sorted(per_layer, key=lambda row: row["bin"])]
        }
        for label, per_label in bins.items()
    }


def theory_rows(rows: list[dict[str, Any]], layers: Sequence[int], backward: bool) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Per scheme and shown layer: measured std (median over seeds), theory, and their ratio; the same for gradients."""
    pairs = [("std", "theory_std")] + [("grad_std", "theory_grad_std")] * backward
    columns = ("scheme", "layer", *(name for measured, _ in pairs for name in (f"{measured} measured", f"{measured} theory", f"{measured} measured / theory")))
    table = []
    for label in dict.fromkeys(row["scheme"] for row in rows):
        for layer in layers:
            at_layer = [row for row in rows if row["scheme"] == label and row["layer"] == layer]
            cells: list[Any] = [label, layer]
            for measured, predicted in pairs:
                value = nan_median(numbers([row[measured] for row in at_layer]))
                expected = at_layer[0][predicted]
                expected = None if expected is None else float(expected)
                cells += [value, expected, None if expected is None or expected == 0 else value / expected]
            table.append(tuple(cells))
    return columns, table


def train_part(result: RunResult, report: Report) -> None:
    """The training report: final metrics, curves rebuilt from train_metrics.csv, the saved decision boundaries."""
    from initbench.render.figures import training_curves_figure

    rows = result.tables.get("train_metrics.csv", [])
    schemes = result.schemes
    if not rows or not schemes:
        report.notes.append("No train_metrics.csv or summary.json: nothing to report.")
        return
    classify = any(row["test_acc"] is not None for row in rows)
    seeds = result.config.get("seeds", 1)
    if classify:
        columns: tuple[str, ...] = ("scheme", "train acc", "test acc", "loss", "steps to target", "diverged")
        table = [
            (label, entry["train_acc"]["median"], entry["test_acc"]["median"], entry["loss"]["median"],
             reached_text(entry["steps_to_target_per_seed"]) if "steps_to_target_per_seed" in entry else None, f"{entry['diverged']}/{seeds}")
            for label, entry in schemes.items()
        ]  # fmt: skip
    else:
        columns, table = ("scheme", "loss", "diverged"), [(label, entry["loss"]["median"], f"{entry['diverged']}/{seeds}") for label, entry in schemes.items()]
    report.tables["Final metrics"] = ("summary.csv", columns, table, "Medians over the seeds that did not diverge.")
    steps = numbers(list(dict.fromkeys(row["step"] for row in rows)))
    metrics = ("loss", "test_acc") if classify else ("loss",)
    curves: dict[str, dict[str, np.ndarray]] = {}
    for metric in metrics:
        for label, values in by_scheme_and_seed(rows, metric, "step").items():
            curves.setdefault(label, {})[metric] = values
    name = result.config.get("name", "")
    dataset = result.config.get("train", {}).get("dataset", "")
    report.add_figure(
        "training_curves.png",
        training_curves_figure(steps, curves, f"{name}: {dataset}", schemes),
        "Training loss and test accuracy against step: median over seeds, min–max (the chance line needs the dataset, which no file holds)",
    )
    saved = result.path / "decision_boundary.png"
    if saved.is_file():
        report.figures["decision_boundary.png"] = (saved.read_bytes(), "Decision boundaries, as the run saved them (they need the trained models)")



def recommend_part(result: RunResult, report: Report) -> None:
    """``initbench recommend``'s directory: the per-layer scales and stds, and the training check."""
    layers = result.tables.get("layers.csv") or []
    if not layers:
        report.notes.append("No layers.csv: nothing to report.")
        return
    keys = ("module", "fan_in", "sigma_w2_constructor", "sigma_w2_rules", "chi1", "std_constructor", "std_he", "std_rules")
    columns = ("module", "fan_in", "σ_w² default", "σ_w² rules", "χ₁", "std default", "std he", "std rules")  # as recommend prints them
    report.tables["Per layer"] = ("layers.csv", columns, [tuple(row.get(key) for key in keys) for row in layers], (
        f"σ_w² = fan_in·Var(W) per weight layer, from {result.summary.get('source')}, and the std of its output with PyTorch's "
        "defaults (constructor), He and the rules (config.yaml)."
    ))
    training = result.summary.get("training") or {}
    if training:
        rows = [
            (label, entry.get("loss", {}).get("median"), entry.get("test_acc", {}).get("median"), entry.get("steps_to_target"), entry.get("steps_to_target_reached"))
            for label, entry in training.items()
        ]
        report.tables["Training check"] = ("training.csv", ("init", "loss", "test acc", "steps to target", "seeds reached"), rows, "Medians over seeds (train.yaml trains the rules).")

def gain_part(result: RunResult, report: Report) -> None:
    rows = result.tables.get("gains.csv", [])
    report.tables["Gains"] = ("summary.csv", ("gain", "sigma_w", "std_first", "std_last"), [tuple(row.values()) for row in rows], (
        f"Activation {(result.summary or {}).get('activation', '')}; std_first and std_last measured at the first and last layer."
    ))


def phase_part(result: RunResult, report: Report) -> None:
    """The phase diagram, rebuilt from phase.csv, and how many grid cells fall in each phase."""
    from initbench.core.registry import build_from_spec
    from initbench.experiments.phase import scheme_positions
    from initbench.nets.activations import ACTIVATIONS
    from initbench.render.figures import phase_figure
    from initbench.theory.phase_diagram import PhaseDiagram

    rows = result.tables.get("phase.csv", [])
    if not rows:
        report.notes.append("No phase.csv: nothing to report.")
        return
    sw2 = numbers(list(dict.fromkeys(row["sigma_w2"] for row in rows)))
    sb2 = numbers(list(dict.fromkeys(row["sigma_b2"] for row in rows)))

    def grid(column: str) -> np.ndarray:
        return numbers([row[column] for row in rows]).reshape(len(sb2), len(sw2))  # rows run over σ_b², then σ_w²

    measured = any(row["measured_depth"] is not None for row in rows)
    activation = str(result.config.get("model", {}).get("activation", "tanh"))
    function = build_from_spec(ACTIVATIONS, activation)
    diagram = PhaseDiagram(
        activation=function.spec(), sw2=sw2, sb2=sb2, q_star=grid("q_star"), chi1=grid("chi1"), xi_c=grid("xi_c"), c_star=grid("c_star"),
        phase=np.array([row["phase"] for row in rows], dtype=object).reshape(len(sb2), len(sw2)),
        predicted_depth=grid("predicted_depth"), measured_depth=grid("measured_depth") if measured else None,
    )
    counts = {phase: sum(row["phase"] == phase for row in rows) for phase in dict.fromkeys(row["phase"] for row in rows)}
    report.tables["Grid cells by phase"] = ("summary.csv", ("phase", "cells"), list(counts.items()), f"{len(sw2)} σ_w² × {len(sb2)} σ_b² values.")
    depth = result.config.get("model", {}).get("depth") if measured else None
    report.add_figure("phase.png", phase_figure(diagram, scheme_positions(function), depth), f"Order–chaos phase diagram of {activation}")


# --- A sweep directory -------------------------------------------------------------------------


def sweep_report(merged: SweepReport) -> Report:
    """The sweep's merged table, its figures, the points still missing, and the points' environments."""
    from initbench.outputs.sweep_figures import by_depth_figure, heatmap_figure
    from initbench.runs.sweeps.collect import varying
    from initbench.runs.sweeps.grid import value_text

    sweep = merged.sweep
    axes = "; ".join(f"{axis.key} = {', '.join(value_text(value) for value in axis.values)}" for axis in sweep.axes)
    report = Report(
        title=f"initbench sweep report: {sweep.name}",
        subtitle=f"Directory {merged.path}: {merged.complete} of {len(sweep.points)} points complete; axes: {axes}.",
        config_text=(merged.path / SweepDirectory.BASE).read_text() if (merged.path / SweepDirectory.BASE).is_file() else "",
        environment=sweep_environment(merged),
    )
    report.tables["Results"] = ("sweep_results.csv", merged.columns, [[row.get(column) for column in merged.columns] for row in merged.rows], (
        "One row per point and scheme; values are medians over seeds, verdicts as in each run's summary."
    ))
    if "theory_std_last" in merged.columns:
        theory = [
            (row["point"], row["scheme"], row.get("std_last"), row.get("theory_std_last"),
             None if not row.get("theory_std_last") else row["std_last"] / row["theory_std_last"])
            for row in merged.rows if "std_last" in row
        ]  # fmt: skip
        report.tables["Measured against theory"] = ("theory.csv", ("point", "scheme", "std_last", "theory_std_last", "measured / theory"), theory, (
            "The std at the last layer (median over seeds) beside the mean-field prediction."
        ))
    if merged.missing:
        report.tables[f"Missing points ({len(merged.missing)})"] = ("missing.csv", ("point", "status", "overrides"), [
            (point.name, status, " ".join(point.overrides)) for point, status in merged.missing
        ], "Run them with: initbench sweep " + str(merged.path))
    rows = [row for row in merged.rows if merged.metric in row]
    if merged.metric and len({row["depth"] for row in rows if isinstance(row.get("depth"), int)}) > 1:
        report.add_figure(f"{merged.metric}_by_depth.png", by_depth_figure(merged), f"{merged.metric} against depth")
    if merged.metric and varying(rows, ("scheme", "activation")):
        report.add_figure("heatmap.png", heatmap_figure(merged), f"{merged.metric} by scheme and activation")
    return report


def sweep_environment(merged: SweepReport) -> dict[str, Any]:
    """Each environment key of the complete points' meta.json, with every value it takes (usually one)."""
    from initbench.runs.jsonio import read_json

    keys = ("initbench", "torch", "python", "platform", "device", "dtype", "git_commit", "host")
    seen: dict[str, dict[str, None]] = {key: {} for key in keys}
    for point in merged.sweep.points:
        meta_path = SweepDirectory(merged.path).point_path(point.name) / RunDirectory.META
        if point.name in {missing.name for missing, _ in merged.missing} or not meta_path.is_file():
            continue
        meta = read_json(meta_path)
        for key in keys:
            seen[key][str(meta.get(key))] = None
    return {key: ", ".join(values) for key, values in seen.items() if values}
