"""LSUV's fits: summary.json's record of them (:func:`fit_entries`), and the same read by a person
(:func:`fit_paragraphs` for summary.md, :func:`fit_warnings` for the terminal), from that record only.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.text import Text

from initbench.engines.lsuv_fit import Fits, LayerFit
from initbench.schemes.lsuv import LSUV

if TYPE_CHECKING:
    from initbench.engines.base import Run


def layer_record(layer: LayerFit) -> dict[str, Any]:
    """A layer's fit for summary.json; the variance of a layer never called is null."""
    return {**asdict(layer), "variance": layer.variance if layer.called else None}


def fit_entries(fits: Fits, runs: list[Run], batch: str) -> dict[str, dict[str, Any]]:
    """summary.json's ``lsuv`` entry of each LSUV scheme label among ``runs``: its options and
    batch, each layer's median rescales over seeds, the layers that did not converge or were not
    called, and per seed each layer's :class:`LayerFit`.

    Args:
        fits: the fits of ``runs``' LSUV runs.
        runs: the runs, for their schemes' options and their order.
        batch: which batch the runs were fitted on, in words.
    """
    entries = {}
    for label in dict.fromkeys(run.label for run in runs):
        seeds = [run.seed for run in runs if run.label == label and (label, run.seed) in fits]
        if not seeds:
            continue
        scheme = next(run.scheme for run in runs if run.label == label)
        assert isinstance(scheme, LSUV)
        first = fits[(label, seeds[0])]
        counts = [[fits[(label, seed)][layer].iterations for seed in seeds] for layer in range(len(first))]
        entries[label] = {
            "tol": scheme.tol,
            "max_iter": scheme.max_iter,
            "batch": batch,
            "modules": [layer.module for layer in first],
            "iterations_median_by_layer": [float(statistics.median(row)) for row in counts],
            "not_converged": [{"seed": seed, **layer_record(layer)} for seed in seeds for layer in fits[(label, seed)] if layer.called and not layer.converged],
            "not_called": [layer.module for layer in first if not layer.called],
            "per_seed": [{"seed": seed, "layers": [layer_record(layer) for layer in fits[(label, seed)]]} for seed in seeds],
        }
    return entries


def lsuv_entries(schemes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``lsuv`` entries of a summary.json's schemes, by label."""
    return {label: entry["lsuv"] for label, entry in schemes.items() if "lsuv" in entry}


def fit_paragraphs(schemes: dict[str, dict[str, Any]]) -> list[str]:
    """summary.md's paragraph about each LSUV scheme's fits, from summary.json's schemes."""
    paragraphs = []
    for label, entry in lsuv_entries(schemes).items():
        rescales = sum(layer["iterations"] for seed in entry["per_seed"] for layer in seed["layers"]) / len(entry["per_seed"])
        text = (
            f"LSUV '{label}' (|Var(output) − 1| < {entry['tol']}, at most {entry['max_iter']} rescales a layer), fitted on {entry['batch']}: "
            f"{len(entry['modules'])} weight layers, {rescales:g} rescales a run on average (per layer and seed in summary.json)."
        )
        failures = entry["not_converged"]
        if failures:
            listed = "; ".join(f"seed {item['seed']} {item['module'] or 'the model'}: Var {item['variance']:.4g} after {item['iterations']}" for item in failures[:10])
            more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
            text += f" **Not converged** ({len(failures)} layer fits): {listed}{more}."
        paragraphs.append(text)
    return paragraphs


def fit_warnings(schemes: dict[str, dict[str, Any]]) -> list[Text]:
    """For the terminal, one line per LSUV scheme whose layers did not all converge."""
    return [
        Text(
            f"LSUV '{label}': {len(entry['not_converged'])} layer fits did not reach |Var(output) − 1| < {entry['tol']} in {entry['max_iter']} rescales (summary.json lists them).",
            style="yellow",
        )
        for label, entry in lsuv_entries(schemes).items()
        if entry["not_converged"]
    ]
