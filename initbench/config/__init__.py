"""The run configuration: its sections (:mod:`~initbench.config.sections`), the whole
:class:`~initbench.config.run.Config`, reading YAML with ``key=value`` overrides
(:mod:`~initbench.config.loading`) and the phase diagram's grids (:mod:`~initbench.config.grids`).

May import core, nets, data, theory and schemes.
"""
