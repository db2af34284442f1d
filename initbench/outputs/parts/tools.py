"""The reports of the small experiments: ``gain`` (gains.csv), ``phase`` (phase.csv: the phase
diagram) and ``recommend`` (layers.csv, summary.json, train.yaml)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from rich.text import Text

from initbench.core.registry import build_from_spec
from initbench.experiments.gain import LABELS, seed_range_text
from initbench.experiments.phase import scheme_positions
from initbench.nets.activations import ACTIVATIONS
from initbench.outputs.parts.common import Saved, numbers
from initbench.render.figures import phase_figure
from initbench.render.formatting import markdown_table, reached_text, rich_table
from initbench.runs.recommend import TRAIN_CONFIG
from initbench.runs.results import SUMMARY
from initbench.theory.phase_diagram import PhaseDiagram, compute_phase_diagram

if TYPE_CHECKING:
    from initbench.outputs.document import Report


def gain_part(saved: Saved, report: Report) -> None:
    """The gains and their measured check: summary.md, the terminal table, the report's table."""
    result, config = saved.result, saved.result.config
    rows = result.tables.get("gains.csv", [])
    activation = (result.summary or {}).get("activation", "")
    report.tables["Gains"] = ("summary.csv", ("gain", "sigma_w", "std_first", "std_last"), [tuple(row.values()) for row in rows], (
        f"Activation {activation}; std_first and std_last measured at the first and last layer."
    ))  # fmt: skip
    depth, width, batch = config["model"]["depth"], config["model"]["width"], config["input"]["batch"]
    measured = {row["gain"]: row for row in rows}
    shown = [(label, row["sigma_w"], row["std_first"], row["std_last"]) for name, label in LABELS.items() if (row := measured.get(name))]
    shown += [(label, None, None, None) for name, label in LABELS.items() if name not in measured]
    columns = ("gain", "σ_w", "std L1", f"std L{depth}")
    seeds = list(range(config["seed"], config["seed"] + config["seeds"]))
    note = f"Measured: a {depth}-layer, {width}-unit net with weights N(0, σ_w²/{width}), batch {batch}, {seed_range_text(seeds)}. – means no such gain exists."
    title = f"Gains for {activation}, σ_b² = {config['gain']['sb2']:g}"
    report.set_summary([f"## {title}\n\n{markdown_table(columns, shown)}\n\n{note}"])
    report.console = [rich_table(title, columns, shown, compact=False), Text(note)]


def phase_diagram_of(rows: list[dict[str, Any]], activation: str) -> PhaseDiagram:
    """phase.csv back into the diagram it was written from (rows run over σ_b², then σ_w²)."""
    sw2 = numbers(list(dict.fromkeys(row["sigma_w2"] for row in rows)))
    sb2 = numbers(list(dict.fromkeys(row["sigma_b2"] for row in rows)))

    def grid(column: str) -> np.ndarray:
        return numbers([row[column] for row in rows]).reshape(len(sb2), len(sw2))

    measured = any(row["measured_depth"] is not None for row in rows)
    return PhaseDiagram(
        activation=activation, sw2=sw2, sb2=sb2, q_star=grid("q_star"), chi1=grid("chi1"), xi_c=grid("xi_c"), c_star=grid("c_star"),
        phase=np.array([row["phase"] for row in rows], dtype=object).reshape(len(sb2), len(sw2)),
        predicted_depth=grid("predicted_depth"), measured_depth=grid("measured_depth") if measured else None,
    )  # fmt: skip


def phase_part(saved: Saved, report: Report) -> None:
    """The phase diagram, where the common schemes sit (from theory), and how many grid cells fall in each phase."""
    if not saved.has_files(("phase.csv",), report):
        return
    rows = saved.result.tables["phase.csv"]
    activation = str(saved.result.config.get("model", {}).get("activation", "tanh"))
    function = build_from_spec(ACTIVATIONS, activation)
    diagram = phase_diagram_of(rows, function.spec())
    counts = {phase: sum(row["phase"] == phase for row in rows) for phase in dict.fromkeys(row["phase"] for row in rows)}
    report.tables["Grid cells by phase"] = ("summary.csv", ("phase", "cells"), list(counts.items()), f"{len(diagram.sw2)} σ_w² × {len(diagram.sb2)} σ_b² values.")
    depth = saved.result.config.get("model", {}).get("depth") if diagram.measured_depth is not None else None
    positions = scheme_positions(function)
    report.add_figure("phase.png", phase_figure(diagram, positions, depth), f"Order–chaos phase diagram of {activation}")
    at_schemes = []
    for label, value in positions.items():
        at = compute_phase_diagram(function, [value], [0.0])
        at_schemes.append((label, value, float(at.q_star[0, 0]), float(at.chi1[0, 0]), at.phase[0, 0], float(at.xi_c[0, 0])))
    every = {name: sum(row["phase"] == name for row in rows) for name in ("ordered", "critical", "chaotic", "unbounded")}
    report.console = [
        rich_table(f"Where the common schemes sit ({function.spec()}, σ_b² = 0)", ("scheme", "σ_w²", "q*", "χ₁", "phase", "ξ_c"), at_schemes),
        Text(f"Grid: {len(diagram.sw2)} × {len(diagram.sb2)} points, " + ", ".join(f"{count} {name}" for name, count in every.items()) + "."),
    ]


def recommend_part(saved: Saved, report: Report) -> None:
    """``initbench recommend``'s directory: the per-layer scales and stds, and the training check."""
    result = saved.result
    if not saved.has_files(("layers.csv", SUMMARY), report):
        return
    layers, summary, seeds = result.tables["layers.csv"], result.summary or {}, saved.seeds_text()
    keys = ("module", "fan_in", "sigma_w2_constructor", "sigma_w2_rules", "chi1", "std_constructor", "std_he", "std_rules")
    columns = ("module", "fan_in", "σ_w² default", "σ_w² rules", "χ₁", "std default", "std he", "std rules")  # as recommend prints them
    report.tables["Per layer"] = ("layers.csv", columns, [tuple(row.get(key) for key in keys) for row in layers], (
        f"σ_w² = fan_in·Var(W) per weight layer, from {summary.get('source')}, and the std of its output with PyTorch's "
        "defaults (constructor), He and the rules (config.yaml)."
    ))  # fmt: skip
    rows = [tuple(row[key] for key in ("module", "fan_in", "sigma_w2_constructor", "sigma_w2", "chi1", "std_constructor", "std_he", "std_rules")) for row in layers]
    source = "mean-field theory" if summary["source"] == "theory" else f"a data-driven (LSUV) pass ({summary['why_data_driven']})"
    output = "std" if result.config.get("model", {}).get("arch") == "module" else "pre_std"  # a user's module reports its own output
    sections = [
        (
            f"Scales from {source}. Each weight layer gets `{summary['rule_scheme']}`: σ_w² = scale. "
            f"The std is that of the layer's output (`{output}` in layer_stats.csv: h, after the norm in a normalized "
            "built-in net; a block reports its first weight layer), measured with the rules (`config.yaml`), PyTorch's defaults "
            "(`constructor`) and He (`kaiming_normal`)."
        ),
        markdown_table(columns, rows),
    ]
    report.console = [rich_table(f"Per layer: σ_w² = fan_in·Var(W), and the std of its output ({seeds})", columns, rows)]
    report.set_summary(sections + training_check(saved, report))


def training_check(saved: Saved, report: Report) -> list[str]:
    """The training check of recommend's rules against the baselines: its summary.md sections,
    its terminal table and the report's table (nothing without a check)."""
    result, seeds = saved.result, saved.seeds_text()
    training = (result.summary or {}).get("training") or {}
    if not training or not (result.path / TRAIN_CONFIG).is_file():
        return []
    settings = yaml.safe_load((result.path / TRAIN_CONFIG).read_text(encoding="utf-8"))["train"]
    train_columns = ("init", "loss", "test acc", "steps to target")
    train_rows = [
        (label, entry["loss"]["median"], entry.get("test_acc", {}).get("median"), reached_text(entry["steps_to_target_per_seed"]) if "steps_to_target_per_seed" in entry else None)
        for label, entry in training.items()
    ]
    title = f"Training check: {settings['dataset']}, {settings['steps']} steps of sgd lr {settings['lr']} ({seeds})"
    report.console.append(rich_table(title, train_columns, train_rows))
    report.tables["Training check"] = ("training.csv", ("init", "loss", "test acc", "steps to target", "seeds reached"), [
        (label, entry.get("loss", {}).get("median"), entry.get("test_acc", {}).get("median"), entry.get("steps_to_target"), entry.get("steps_to_target_reached"))
        for label, entry in training.items()
    ], "Medians over seeds (train.yaml trains the rules).")  # fmt: skip
    return [f"{title}; target: test accuracy ≥ {settings['target_accuracy']} (`train.yaml` trains the rules).", markdown_table(train_columns, train_rows)]
