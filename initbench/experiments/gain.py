"""Gains of an activation as an experiment (``experiment: gain``, or ``initbench gain``).

The variance-preserving, critical and PyTorch gains of ``model.activation`` from
:mod:`initbench.gains`, each checked in a ``model.depth`` × ``model.width`` net fed ``input.batch``
rows (the median over ``seeds``). Writes ``gains.csv`` (``gain,sigma_w,std_first,std_last``), ``summary.json`` (the keys of
``initbench gain --json``) and ``summary.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from initbench.experiments import EXPERIMENTS, ExperimentResult, RunContext, Table
from initbench.gains import Gains, compute_gains, measure_gains
from initbench.report import markdown_table, rich_table

if TYPE_CHECKING:
    import torch

    from initbench.config import Config

LABELS = {"preserving": "variance-preserving", "critical": "critical (χ₁ = 1)", "torch": "PyTorch calculate_gain"}


def sb2_of(config: Config) -> float:
    assert config.gain is not None  # Config fills it in for experiment: gain
    return config.gain.sb2


def seeds_text(seeds: list[int]) -> str:
    """``seed 0``, or ``median over seeds 0–2``."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"median over seeds {seeds[0]}–{seeds[-1]}"


def gains_of(config: Config) -> Gains:
    """The three gains of the config's activation, from theory alone (``initbench gain --json``)."""
    return compute_gains(config.model.build_activation(), sb2_of(config))


@EXPERIMENTS.register("gain")
class GainExperiment:
    """The variance-preserving, critical and PyTorch gains of an activation, with a measured check."""

    def check(self, config: Config, device: torch.device) -> None:
        """The measured nets' memory: three gains × ``seeds`` nets, stacked."""
        import torch

        from initbench.engine import MemoryEstimate, check_memory, propagation_memory_estimate

        nets = propagation_memory_estimate(3 * config.seeds, config.input.batch, config.model.width, config.model.depth, False, torch.float32)
        check_memory(MemoryEstimate(nets.device, 0), device, hint="Use fewer --seeds.")

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        sb2 = sb2_of(config)
        gains = gains_of(config)
        depth, width, batch = config.model.depth, config.model.width, config.input.batch
        measured = measure_gains(config.model.build_activation(), gains.named(), sb2, context.device, depth, width, batch, context.progress, config.seed_list())
        rows = [(LABELS[name], value, *measured[name]) for name, value in gains.named().items()]
        rows += [(LABELS[name], None, None, None) for name in LABELS if name not in gains.named()]
        columns = ("gain", "σ_w", "std L1", f"std L{depth}")
        note = (
            f"Measured: a {depth}-layer, {width}-unit net with weights N(0, σ_w²/{width}), batch {batch}, {seeds_text(config.seed_list())}."
            " – means no such gain exists."
        )
        title = f"Gains for {gains.activation}, σ_b² = {sb2:g}"
        csv_rows = [(name, gains.named()[name], *measured[name]) for name in gains.named()]
        return ExperimentResult(
            tables={"gains.csv": Table(("gain", "sigma_w", "std_first", "std_last"), csv_rows)},
            summary=gains.as_json(),
            report=f"## {title}\n\n{markdown_table(columns, rows)}\n\n{note}",
            console_tables=[rich_table(title, columns, rows, compact=False), Text(note)],
        )
