"""From a :class:`~initbench.config.run.Config` to what the engines and schemes take: which modules
the config's ``init.rules`` set, and the record of the rules for ``summary.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from initbench.schemes.rules import assign_rules, rules_record

if TYPE_CHECKING:
    from initbench.config.run import Config


def ruled_modules(config: Config, model: nn.Module) -> frozenset[str]:
    """The paths of ``model``'s modules that ``config``'s ``init.rules`` set (empty without rules):
    what a scheme fitted after the draw (LSUV) leaves as the rule drew it."""
    rules = config.resolved_rules()
    return frozenset(assign_rules(model, rules)) if rules else frozenset()


def init_rules_summary(config: Config, model: nn.Module) -> dict[str, Any] | None:
    """:func:`rules_record` for ``config``'s runs of ``model`` (one run's model: all share their
    modules), or None without rules."""
    rules = config.resolved_rules()
    if not rules:
        return None
    schemes, bias = config.resolved_init()
    return rules_record(model, rules, {label: scheme.spec() for label, scheme in schemes}, bias.spec())
