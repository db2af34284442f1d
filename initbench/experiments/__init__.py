"""Experiments: what a run measures, registered by name in
:data:`~initbench.experiments.base.EXPERIMENTS` and used as ``experiment: NAME``.

timm's pattern: :mod:`~initbench.experiments.base` holds the registry and the contract types; each
experiment module imports only the leaf (and never another experiment); this ``__init__`` imports
them all. An experiment takes a validated config and returns an
:class:`~initbench.experiments.base.ExperimentResult`; it never writes files itself
(:mod:`initbench.runs.rundir` does).

May import everything from core to render.
"""

from initbench.experiments import gain, phase, propagation, train  # noqa: F401  (first: `initbench list` shows them first)  # noqa: F401
