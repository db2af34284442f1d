"""The order–chaos phase diagram as an experiment (``experiment: phase``, or ``initbench phase``).

Theory from :mod:`initbench.phase` over the ``phase.sw2`` × ``phase.sb2`` grid for
``model.activation``, and with ``phase.measure`` the measured convergence depth in nets of
``model.depth`` × ``model.width``, their correlations averaged over ``seeds`` nets a point. Writes ``phase.csv`` and ``phase.png``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from initbench.experiments import EXPERIMENTS, ExperimentResult, RunContext, Table
from initbench.phase import check_grid, compute_phase_diagram, measure_convergence_depth, parse_grid, scheme_positions
from initbench.plots import phase_figure
from initbench.report import rich_table

if TYPE_CHECKING:
    import torch

    from initbench.config import Config, PhaseConfig

COLUMNS = ("sigma_w2", "sigma_b2", "q_star", "chi1", "phase", "xi_c", "c_star", "predicted_depth", "measured_depth")


@EXPERIMENTS.register("phase")
class PhaseExperiment:
    """The order–chaos phase diagram over (σ_w², σ_b²): χ₁, depth scales and where the common schemes sit."""

    def settings(self, config: Config) -> PhaseConfig:
        assert config.phase is not None  # Config fills it in for experiment: phase
        return config.phase

    def check(self, config: Config, device: torch.device) -> None:
        """The grid's size, and with ``measure`` its nets' memory (the grids' syntax was checked with the config)."""
        settings = self.settings(config)
        sw2_values, sb2_values = parse_grid(settings.sw2, "phase.sw2"), parse_grid(settings.sb2, "phase.sb2")
        check_grid(sw2_values, sb2_values, config.model.depth if settings.measure else None, config.model.width, device, config.seeds)

    def run(self, context: RunContext) -> ExperimentResult:
        config = context.config
        settings = self.settings(config)
        function = config.model.build_activation()
        sw2_values, sb2_values = parse_grid(settings.sw2, "phase.sw2"), parse_grid(settings.sb2, "phase.sb2")
        depth, width = config.model.depth, config.model.width
        diagram = compute_phase_diagram(function, sw2_values, sb2_values, context.progress)
        if settings.measure:
            diagram.measured_depth = measure_convergence_depth(diagram, function, depth, width, context.device, context.progress, config.seed_list())
        positions = scheme_positions(function)
        rows = [
            (float(diagram.sw2[column]), float(diagram.sb2[row]), float(diagram.q_star[row, column]), float(diagram.chi1[row, column]),
             diagram.phase[row, column], float(diagram.xi_c[row, column]), float(diagram.c_star[row, column]), float(diagram.predicted_depth[row, column]),
             float(diagram.measured_depth[row, column]) if diagram.measured_depth is not None else "")
            for row in range(len(diagram.sb2)) for column in range(len(diagram.sw2))
        ]  # fmt: skip
        summary_rows = []
        for label, value in positions.items():
            at_scheme = compute_phase_diagram(function, [value], [0.0])
            summary_rows.append((label, value, float(at_scheme.q_star[0, 0]), float(at_scheme.chi1[0, 0]), at_scheme.phase[0, 0], float(at_scheme.xi_c[0, 0])))
        counts = {name: int((diagram.phase == name).sum()) for name in ("ordered", "critical", "chaotic", "unbounded")}
        return ExperimentResult(
            tables={"phase.csv": Table(COLUMNS, rows)},
            summary=None,
            figures={"phase.png": phase_figure(diagram, positions, depth if settings.measure else None)},
            report=None,
            console_tables=[
                rich_table(
                    f"Where the common schemes sit ({function.spec()}, σ_b² = 0)", ("scheme", "σ_w²", "q*", "χ₁", "phase", "ξ_c"), summary_rows
                ),
                Text(f"Grid: {len(sw2_values)} × {len(sb2_values)} points, " + ", ".join(f"{count} {name}" for name, count in counts.items()) + "."),
            ],
        )
