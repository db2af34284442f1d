"""Drawing a module's parameters for a run: every parameter in registration order, from the run's
generator, each weight then its bias.

This is the stacked engine's draw order, so a plain MLP is the same network on either backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from initbench.engines.base import Run
from initbench.nets.architectures import is_norm, parameter_contexts
from initbench.schemes.base import InitScheme
from initbench.schemes.rules import ResolvedRule, assign_rules, rule_context

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext


def initialize(model: nn.Module, run: Run, bias_scheme: InitScheme, generator: torch.Generator, rules: list[ResolvedRule] | None = None) -> None:
    """Draw every parameter of ``model`` for ``run``, in registration order, from ``generator``.

    Weights follow the run's scheme and biases ``bias_scheme``, each told its
    :class:`~initbench.nets.architectures.ParamContext`. Normalization layers get weight 1 and bias 0.
    Other parameters (scalars such as a residual gate) keep the value the constructor gave them.
    A scheme that keeps the constructor's init (``constructor``) draws nothing. A module one of
    ``rules`` matches gets the first such rule's schemes instead (see :mod:`initbench.schemes.rules`).
    """
    chosen = assign_rules(model, rules or [])
    if run.scheme.keeps_constructor_init and not chosen:
        return
    paths = {module: path for path, module in model.named_modules()}
    with torch.no_grad():
        for module, parameter, context in parameter_contexts(model):
            rule = chosen.get(paths[module])
            if rule is not None:
                draw_by_rule(model, paths[module], module, parameter, context, rule, generator)
            elif run.scheme.keeps_constructor_init:
                continue
            elif context is None:
                if is_norm(module):
                    parameter.fill_(1.0 if parameter is getattr(module, "weight", None) else 0.0)
            elif context.role == "weight":
                run.scheme.sample_(parameter, context, generator)
            else:
                bias_scheme.sample_(parameter, context, generator)


def draw_by_rule(
    model: nn.Module, path: str, module: nn.Module, parameter: nn.Parameter, context: ParamContext | None, rule: ResolvedRule, generator: torch.Generator
) -> None:
    """Draw one parameter of a module ``rule`` sets: weights by its scheme, biases by its bias.

    A parameter without a context is a norm's (or another weightless module's) ``weight`` or
    ``bias``, given fans of its own length; any other such parameter keeps its constructor value.
    """
    if context is None:
        role = "weight" if parameter is getattr(module, "weight", None) else "bias" if parameter is getattr(module, "bias", None) else None
        if role is None:
            return
        context = rule_context(model, path, module, parameter, role)
    scheme = rule.scheme if context.role == "weight" else rule.bias
    if scheme is not None and not scheme.keeps_constructor_init:
        scheme.sample_(parameter, context, generator)
