"""The kernels that draw and run many seeds of a network at once: the stacked MLP engine
(:mod:`~initbench.engines.stacked`, :mod:`~initbench.engines.training`) and the module backend for
any ``nn.Module`` (:mod:`~initbench.engines.modules`), with LSUV's fitting loop.

:func:`select` picks the backend for a config and says why; both backends observe through one
interface (:class:`~initbench.engines.observe.StackedNet`: one observation per row).

May import core, nets, data, theory, schemes and config; nothing of rich, matplotlib or typer.
"""

from initbench.engines.choice import EngineChoice, select

__all__ = ["EngineChoice", "select"]
