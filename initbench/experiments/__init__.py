"""Experiments: what a run measures, registered by name in
:data:`~initbench.experiments.base.EXPERIMENTS` and used as ``experiment: NAME``.

timm's pattern: :mod:`~initbench.experiments.base` holds the registry and the contract types; each
experiment module imports only the leaf (and never another experiment); this ``__init__`` imports
them all. An experiment takes a validated config and returns an
:class:`~initbench.experiments.base.ExperimentResult`, data only (tables, summary, data files); it
never writes files itself (:mod:`initbench.runs.rundir` does), and draws no figure
(:mod:`initbench.outputs.run_report` draws them from the saved files).

May import everything from core to render.
"""

# Registration order is the order `initbench list experiments` shows: the propagation experiments first.
from initbench.experiments import propagation, train  # noqa: F401  # isort: skip
from initbench.experiments import gain, phase  # noqa: F401  # isort: skip
