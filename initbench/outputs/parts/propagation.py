"""The forward and gradients report, from layer_stats.csv, histograms.csv and summary.json: the
std-by-layer and histogram figures, summary.md, the terminal tables, and the report's tables of
the measured std beside the theory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.text import Text

from initbench.outputs.parts.common import Saved, by_scheme_and_seed, nan_median, numbers
from initbench.render.figures import histograms_figure, std_by_layer_figure
from initbench.render.formatting import display_layers, format_number, markdown_table, rich_table
from initbench.render.lsuv_fits import fit_paragraphs, fit_warnings
from initbench.runs.results import SUMMARY, damaged

if TYPE_CHECKING:
    from initbench.config.run import Config
    from initbench.outputs.document import Report

Rows = tuple[tuple[str, ...], list[tuple[Any, ...]]]

#: What the report reads of summary.json's entry per scheme (:meth:`Saved.schemes`).
SCHEME_KEYS = {"std_median_by_layer": None, "theory": ("theory_std_last", "chi1", "phase", "xi_q", "xi_c"), "first_nonfinite_layer": None, "verdict": None}
GRADIENT_KEYS = {"grad_std_median_by_layer": None, "theory_grad_std_first": None, "grad_verdict": None, "grad_ratio": None}

VERDICTS = (
    "Verdicts compare the last layer with the input's std of 1: exploding above 10 or non-finite, "
    "dead at exactly 0, saturated when over half the units are saturated, vanishing below 0.1. "
    "Phase: ordered (χ₁ < 1, gradients vanish toward the input), critical (χ₁ = 1), chaotic (χ₁ > 1, they grow)."
)


def describe(config: Config) -> str:
    """One line naming the network, for titles."""
    model = config.model
    if model.arch == "module":
        inputs = f"tokens < {config.input.tokens}" if config.input.tokens else "N(0, 1) inputs"
        return f"{model.factory}, input {config.input.shape} ({inputs}), {'eval' if model.eval else 'train'} mode"
    bias = f", bias {config.init.bias}" if model.bias else ""
    norm = "" if model.norm == "none" else f", {model.norm}"
    shape = {
        "mlp": f"{model.depth} layers × {model.width} units",
        "resmlp": f"{model.depth} residual blocks × {model.width} units",
        "cnn": f"{model.depth} 3×3 conv layers × {model.width} channels, {config.input.image_size}² images",
    }[model.arch]
    return f"{shape}, {model.activation}{norm}{bias}, batch {config.input.batch_size()}"


def terminal_rows(schemes: dict[str, dict[str, Any]], depth: int, gradients: bool = False) -> Rows:
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
            judged = entry["verdict"] + (f": non-finite at {first}" if first is not None else ": non-finite output" if entry.get("output_nonfinite_seeds") else "")
        chi = "–" if prediction is None else f"{format_number(prediction['chi1'], compact=True)} {prediction['phase']}"
        scales = "–" if prediction is None else f"{format_number(prediction['xi_q'], compact=True)} / {format_number(prediction['xi_c'], compact=True)}"
        rows.append((label, *(entry[key][layer - 1] for layer in layers), expected, chi, scales, judged))
    return columns, rows


def std_rows(schemes: dict[str, dict[str, Any]], shown: Sequence[int], depth: int) -> Rows:
    """summary.md's table: the median std at the shown layers, the theory at the last, χ₁, phase, verdict."""

    def cell(entry: dict[str, Any], key: str) -> Any:
        return None if entry["theory"] is None else entry["theory"][key]

    columns = ("scheme", *(f"L{layer}" for layer in shown), f"theory L{depth}", "χ₁", "phase", "non-finite at", "verdict")
    rows = [
        (label, *(entry["std_median_by_layer"][layer - 1] for layer in shown), cell(entry, "theory_std_last"), cell(entry, "chi1"), cell(entry, "phase"),
         entry["first_nonfinite_layer"], entry["verdict"])
        for label, entry in schemes.items()
    ]  # fmt: skip
    return columns, rows


def gradient_rows(schemes: dict[str, dict[str, Any]], shown: Sequence[int]) -> Rows:
    """summary.md's gradient table: the median gradient std at the shown layers, the theory at layer 1, the ratio, the verdict."""
    columns = ("scheme", *(f"L{layer}" for layer in shown), "theory L1", "L1 / last", "gradient verdict")
    rows = [
        (label, *(entry["grad_std_median_by_layer"][layer - 1] for layer in shown), entry["theory_grad_std_first"], entry["grad_ratio"], entry["grad_verdict"])
        for label, entry in schemes.items()
    ]
    return columns, rows


def module_rows(summary: dict[str, Any]) -> Rows:
    """One row per observed point: its module path and type, and each scheme's median output std."""
    schemes = summary["schemes"]
    columns = ("row", "module", "type", *schemes)
    rows = [(point["row"], point["module"], point["module_type"], *(entry["std_median_by_layer"][point["row"] - 1] for entry in schemes.values())) for point in summary["modules"]]
    return columns, rows


def summary_sections(saved: Saved, title: str, depth: int, backward: bool) -> list[str]:
    """summary.md's paragraphs, tables and figure links."""
    summary, seeds = saved.result.summary or {}, saved.seeds_text()
    schemes, shown = summary["schemes"], display_layers(depth)
    sections = [
        (
            f"Forward pass of {title}; inputs x ~ N(0, 1). Std of φ(h) per layer ({seeds}), with the mean-field "
            f"prediction at the last layer and χ₁ = σ_w²·E[φ'(z)²] at the fixed point q*."
        ),
        markdown_table(*std_rows(schemes, shown, depth)),
        *(
            [f"Every row observed, in execution order (median std of its output; runs went {summary['backend']['runs']}):\n\n" + markdown_table(*module_rows(summary))]
            if "backend" in summary else []
        ),
        *fit_paragraphs(schemes),
        VERDICTS,
        "![Activation std by layer](std_by_layer.png)",
        "![Activation histograms](histograms.png)",
    ]  # fmt: skip
    if backward:
        sections += [
            (
                "Backward pass: the loss L = Σ x^L ⊙ r / √batch with a fixed r ~ N(0, 1) is backpropagated; "
                f"std of dL/dh per layer ({seeds}). The gradient verdict compares layer 1 with the last layer: "
                "exploding toward the input above ×10, vanishing below ×0.1."
            ),
            markdown_table(*gradient_rows(schemes, shown)),
            "![Gradient std by layer](grad_std_by_layer.png)",
        ]
    return sections


def console_tables(saved: Saved, depth: int, backward: bool) -> list[Any]:
    """What the terminal shows: the module table for a user's module, the std tables, LSUV and init.rules warnings."""
    summary, seeds = saved.result.summary or {}, saved.seeds_text()
    schemes = summary["schemes"]
    tables: list[Any] = [rich_table(f"Activation std by layer ({seeds})", *terminal_rows(schemes, depth))]
    if backward:
        tables.append(rich_table(f"Gradient std by layer ({seeds})", *terminal_rows(schemes, depth, gradients=True)))
    tables += fit_warnings(schemes)
    if summary.get("init_rules") is not None and summary["init_rules"]["default_unused"]:
        tables.append(Text("init.rules set every weight layer: init.scheme draws no weight here, so runs that differ only in it measure the same net (summary.json: init_rules).", style="yellow"))
    if "backend" in summary and saved.result.config.get("model", {}).get("arch") == "module":
        tables.insert(0, rich_table(f"Output std of each module ({seeds})", *module_rows(summary)))
    return tables


def add_figures(saved: Saved, title: str, depth: int, backward: bool, report: Report) -> None:
    """std_by_layer.png, histograms.png and (gradients) grad_std_by_layer.png, from the CSVs."""
    rows, config = saved.result.layer_stats, saved.result.config
    module = config.get("model", {}).get("arch") == "module"
    row_names = [row["module"] for row in rows if row["scheme"] == rows[0]["scheme"] and row["seed"] == rows[0]["seed"]] if module else None
    centre = "centre_std" in rows[0]
    report.add_figure(
        "std_by_layer.png",
        std_by_layer_figure(
            by_scheme_and_seed(rows, "centre_std" if centre else "std", "layer"),
            "std of φ(h) at the image centre" if centre else "std of each module's output" if module else "std of activations φ(h)",
            f"Activation std by layer: {title}", theory=first_seed_theory(rows, "theory_std"), row_names=row_names,
        ),  # the cnn's theory holds at the image's centre, so that is what its figure compares
        "Activation std by layer: median over seeds (line), min–max (band), mean-field theory (dashed)",
    )  # fmt: skip
    histograms = saved.result.tables.get("histograms.csv", [])
    if histograms:
        first_seed = {}  # the histograms figure shows each scheme's first seed
        for row in rows:
            first_seed.setdefault(row["scheme"], row["seed"])
        report.add_figure(
            "histograms.png",
            histograms_figure(histogram_inputs(histograms, first_seed, display_layers(depth)), f"Activations φ(h) at init, seed {config.get('seed', 0)}: {title}"),
            "Activation histograms of the first seed",
        )
    if backward:
        report.add_figure(
            "grad_std_by_layer.png",
            std_by_layer_figure(by_scheme_and_seed(rows, "grad_std", "layer"), "std of dLoss/dh", f"Gradient std by layer: {title}", theory=first_seed_theory(rows, "theory_grad_std"), row_names=row_names),
            "Gradient std by layer: median over seeds, min–max, mean-field theory (dashed)",
        )


def first_seed_theory(rows: list[dict[str, Any]], column: str) -> dict[str, np.ndarray]:
    """label → the prediction per layer, for the schemes that have one (a filled cell: a NaN
    prediction is one, drawn as such; an empty cell is none)."""
    predicted = {row["scheme"] for row in rows if row[column] is not None}
    return {label: values[0] for label, values in by_scheme_and_seed(rows, column, "layer").items() if label in predicted}


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


def theory_rows(rows: list[dict[str, Any]], layers: Sequence[int], backward: bool) -> Rows:
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


def check_layers(saved: Saved, depth: int, backward: bool) -> None:
    """That layer_stats.csv holds layers 1 to ``depth`` of every scheme and seed, and summary.json
    a value per layer of each scheme: what the tables and figures index."""
    path, layers = saved.result.path, dict[tuple[Any, Any], list[Any]]()
    for row in saved.result.layer_stats:
        layers.setdefault((row["scheme"], row["seed"]), []).append(row["layer"])
    for (label, seed), numbers_seen in layers.items():
        if sorted(numbers_seen) != list(range(1, depth + 1)):
            raise damaged(path / "layer_stats.csv", f"the layers of {label}, seed {seed} are not 1 to {depth}, once each")
    for label, entry in saved.result.schemes.items():
        for key in ("std_median_by_layer", "grad_std_median_by_layer")[: 1 + backward]:
            if not isinstance(entry[key], list) or len(entry[key]) != depth:
                raise damaged(path / SUMMARY, f"its {key} of {label} does not hold the {depth} layers of layer_stats.csv")


def propagation_part(saved: Saved, report: Report) -> None:
    """The forward (and gradients) report: summary.md and the terminal tables, the report's tables
    (the summary, measured against theory) and the figures."""
    if not saved.has_files(("layer_stats.csv", SUMMARY), report):
        return
    rows = saved.result.layer_stats
    depth = max(row["layer"] for row in rows)
    backward = "grad_std" in rows[0]
    schemes = saved.schemes(SCHEME_KEYS | (GRADIENT_KEYS if backward else {}))
    check_layers(saved, depth, backward)
    title = saved.name if saved.config is None else describe(saved.config)  # the run's own figure titles, from its config
    report.tables["Activation std by layer"] = ("summary.csv", *terminal_rows(schemes, depth), "Median over seeds; theory: mean-field prediction.")
    if backward:
        report.tables["Gradient std by layer"] = ("summary_gradients.csv", *terminal_rows(schemes, depth, gradients=True), "")
    report.tables["Measured against theory"] = ("theory.csv", *theory_rows(rows, display_layers(depth), backward), (
        "Median over seeds of the measured std beside the mean-field prediction (layer_stats.csv's theory columns), "
        "at the first, quarter, middle, three-quarter and last layers; empty where the scheme has no prediction."
    ))  # fmt: skip
    add_figures(saved, title, depth, backward, report)
    report.set_summary(summary_sections(saved, title, depth, backward))
    report.console = console_tables(saved, depth, backward)
