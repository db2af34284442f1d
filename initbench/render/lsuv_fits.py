"""LSUV's fits, read by a person: the per-layer rescales as a table and a summary.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text

from initbench.engines.lsuv_fit import Fits, LayerFit
from initbench.schemes.lsuv import LSUV

if TYPE_CHECKING:
    from initbench.engines.base import Run


@dataclass
class FitReport:
    """What a run reports about its LSUV fits.

    Attributes:
        entries: summary.json's ``lsuv`` entry of each LSUV scheme label: its options and batch,
            each layer's median rescales over seeds, the layers that did not converge or were not
            called, and per seed each layer's :class:`LayerFit`.
        paragraphs: summary.md's paragraphs about them.
        warnings: for the terminal, one line per scheme whose layers did not all converge.
    """

    entries: dict[str, dict[str, Any]]
    paragraphs: list[str]
    warnings: list[Text]


def layer_record(layer: LayerFit) -> dict[str, Any]:
    """A layer's fit for summary.json; the variance of a layer never called is null."""
    return {**asdict(layer), "variance": layer.variance if layer.called else None}


def report_fits(fits: Fits, runs: list[Run], batch: str) -> FitReport:
    """The :class:`FitReport` of ``runs``' LSUV fits.

    Args:
        fits: the fits of ``runs``' LSUV runs.
        runs: the runs, for their schemes' options and their order.
        batch: which batch the runs were fitted on, in words.
    """
    report = FitReport({}, [], [])
    for label in dict.fromkeys(run.label for run in runs):
        seeds = [run.seed for run in runs if run.label == label and (label, run.seed) in fits]
        if not seeds:
            continue
        scheme = next(run.scheme for run in runs if run.label == label)
        assert isinstance(scheme, LSUV)
        first = fits[(label, seeds[0])]
        counts = [[fits[(label, seed)][layer].iterations for seed in seeds] for layer in range(len(first))]
        failures = [{"seed": seed, **layer_record(layer)} for seed in seeds for layer in fits[(label, seed)] if layer.called and not layer.converged]
        report.entries[label] = {
            "tol": scheme.tol,
            "max_iter": scheme.max_iter,
            "batch": batch,
            "modules": [layer.module for layer in first],
            "iterations_median_by_layer": [float(statistics.median(row)) for row in counts],
            "not_converged": failures,
            "not_called": [layer.module for layer in first if not layer.called],
            "per_seed": [{"seed": seed, "layers": [layer_record(layer) for layer in fits[(label, seed)]]} for seed in seeds],
        }
        text = (
            f"LSUV '{label}' (|Var(output) − 1| < {scheme.tol}, at most {scheme.max_iter} rescales a layer), fitted on {batch}: "
            f"{len(first)} weight layers, {sum(map(sum, counts)) / len(seeds):g} rescales a run on average (per layer and seed in summary.json)."
        )
        if failures:
            listed = "; ".join(f"seed {item['seed']} {item['module'] or 'the model'}: Var {item['variance']:.4g} after {item['iterations']}" for item in failures[:10])
            more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
            text += f" **Not converged** ({len(failures)} layer fits): {listed}{more}."
            report.warnings.append(
                Text(f"LSUV '{label}': {len(failures)} layer fits did not reach |Var(output) − 1| < {scheme.tol} in {scheme.max_iter} rescales (summary.json lists them).", style="yellow")
            )
        report.paragraphs.append(text)
    return report
