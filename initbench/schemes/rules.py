"""Per-module init rules: torchvision's ``initialize_weights`` if/elif chain, written in YAML.

::

    init:
      scheme: constructor          # what modules no rule matches get (here: the model's own init)
      rules:
        - {match: Conv2d, scheme: "kaiming_normal:mode=fan_out,nonlinearity=relu", bias: zeros}
        - {match: BatchNorm2d, scheme: ones, bias: zeros}
        - {match: Linear, scheme: "normal:std=0.01", bias: zeros}

Semantics, precisely:

- The modules rules apply to are those that own parameters directly, in model order.
- ``match`` is an ``fnmatch`` glob (case-sensitive), compared with the module's class name
  (``Conv2d``, ``BatchNorm*``) and with its dotted path (``blocks.0.0``, ``head.*``); either
  matching is a match.
- Like the if/elif chain, the **first** rule (in the order written) that matches a module sets it;
  later rules never touch it. Modules no rule matches keep ``init.scheme`` (each run's scheme, with
  ``init.schemes``) and ``init.bias``; rules apply alike to every run.
- A rule's ``scheme`` draws the module's weights, its ``bias`` the module's biases (default:
  ``init.bias``). ``scheme: constructor`` keeps the module as its constructor made it (its bias
  too, unless the rule gives one).
- A rule may set a normalization layer (which without one is filled with weight 1 and bias 0):
  its scheme draws the 1-D weight with fans (n, n), its bias the shift. Other parameters of a
  matched module that are neither its weights nor its biases (a residual gate's scalar) keep the
  constructor's value.
- A rule that matches no module is an error (a typo, ``Conv2D``), unless its pattern names a
  ``torch.nn`` module class, as ``Linear``: a general rule set, like ``initialize_weights``, may
  name layers a given model lacks (the cnn has a Linear head only when it trains). summary.json
  records every rule's modules, empty ones included, and which rule set each module.
- Rules are numbered from 0, as in ``init.rules[0]``.

Schemes in rules are resolved for the network (``gain: auto``, ``nonlinearity``) like ``init.scheme``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from initbench.core.errors import InitbenchError
from initbench.core.registry import nearest
from initbench.nets.architectures import ParamContext, Role, fans, is_norm, weight_layers

if TYPE_CHECKING:
    from initbench.nets.activations import Activation
    from initbench.schemes.base import InitScheme


@dataclass(frozen=True)
class ResolvedRule:
    """One rule, its schemes resolved: ``bias`` None keeps the constructor's bias."""

    index: int
    match: str
    scheme: InitScheme
    bias: InitScheme | None

    @classmethod
    def of(
        cls, index: int, match: str, scheme: InitScheme, bias: InitScheme | None, default_bias: InitScheme, activation: Activation, where: str
    ) -> ResolvedRule:
        """Resolve a rule's schemes for ``activation``; without its own bias it takes ``default_bias``
        (already resolved), or none for a constructor rule."""
        try:
            resolved = scheme.resolve(activation)
            resolved_bias = bias.resolve(activation) if bias is not None else None if scheme.keeps_constructor_init else default_bias
        except InitbenchError as error:
            raise InitbenchError(f"{where}: {error.message}", hint=error.hint) from None
        return cls(index, match, resolved, resolved_bias)

    def matches(self, path: str, type_name: str) -> bool:
        return fnmatch.fnmatchcase(type_name, self.match) or fnmatch.fnmatchcase(path, self.match)


def owners(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that own parameters directly, in model order: what rules apply to."""
    return [(name, module) for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]


def torch_module_classes() -> list[str]:
    return [name for name, value in vars(nn).items() if isinstance(value, type) and issubclass(value, nn.Module)]


def assign_rules(model: nn.Module, rules: list[ResolvedRule]) -> dict[str, ResolvedRule]:
    """Module path → the rule that sets it (the first that matches), for every module a rule matches.

    Raises :class:`InitbenchError` for a rule that matches no module (unless it names a torch.nn
    class), and for a scheme that needs a 2-D weight matched to a module whose weight is 1-D.
    """
    modules = owners(model)
    chosen: dict[str, ResolvedRule] = {}
    for rule in rules:
        matched = [(path, module) for path, module in modules if rule.matches(path, type(module).__name__)]
        where = f"init.rules[{rule.index}] (match '{rule.match}')"
        if not matched and not fnmatch.filter(torch_module_classes(), rule.match):
            names = sorted({type(module).__name__ for _, module in modules}) + [path for path, _ in modules]
            suggestion = nearest(rule.match, names)
            raise InitbenchError(
                f"{where} matches no module of the model." + (f" Did you mean '{suggestion}'?" if suggestion else ""),
                hint=f"A rule's match is a glob on a module's class name or dotted path; the modules with parameters are {shown(modules)}.",
            )
        for path, module in matched:
            weight = getattr(module, "weight", None)
            if not rule.scheme.fills_bias and not rule.scheme.keeps_constructor_init and isinstance(weight, nn.Parameter) and weight.dim() < 2:
                raise InitbenchError(
                    f"{where}: scheme '{rule.scheme.spec()}' {rule.scheme.no_bias_reason}, and {path} ({type(module).__name__}) has a 1-D weight.",
                    hint="Give that module a rule of its own earlier in the list (normalization layers: ones).",
                )
            chosen.setdefault(path, rule)
    return chosen


def shown(modules: list[tuple[str, nn.Module]], limit: int = 6) -> str:
    """``blocks.0.0 (Conv2d), ...``: the first ``limit`` modules, for an error message."""
    items = [f"{path or '(root)'} ({type(module).__name__})" for path, module in modules[:limit]]
    return ", ".join(items) + (f" and {len(modules) - limit} more" if len(modules) > limit else "")


def rule_context(model: nn.Module, path: str, module: nn.Module, parameter: nn.Parameter, role: Role) -> ParamContext:
    """The context of a parameter that no scheme draws without a rule (a norm's weight or bias):
    fans (n, n) of its own length, and the layer of the nearest weight layer before it."""
    layers = weight_layers(model)
    order = [name for name, _ in model.named_modules()]
    before = [number for number, (name, _) in enumerate(layers, start=1) if order.index(name) < order.index(path)]
    fan_in, fan_out = fans(tuple(parameter.shape))
    return ParamContext(path, type(module).__name__, role, tuple(parameter.shape), fan_in, fan_out, before[-1] if before else 1, max(len(layers), 1))


def rules_record(model: nn.Module, rules: list[ResolvedRule], default: dict[str, str], default_bias: str) -> dict[str, Any]:
    """summary.json's ``init_rules``: every rule with the modules it set, and every module with the
    rule that set it (``rule`` null: none; then ``scheme`` is ``default``, the runs' own, by label)."""
    chosen = assign_rules(model, rules)
    modules: dict[str, dict[str, Any]] = {}
    for path, module in owners(model):
        rule = chosen.get(path)
        if rule is not None:
            entry = {"type": type(module).__name__, "rule": rule.index, "match": rule.match, "scheme": rule.scheme.spec()}
            bias = "constructor" if rule.bias is None else rule.bias.spec()
        elif is_norm(module):
            entry, bias = {"type": type(module).__name__, "rule": None, "scheme": "ones"}, "zeros"
        else:
            entry, bias = {"type": type(module).__name__, "rule": None, "scheme": "default"}, default_bias
        modules[path] = entry | ({"bias": bias} if isinstance(getattr(module, "bias", None), nn.Parameter) else {})
    return {
        "rules": [
            {"rule": rule.index, "match": rule.match, "scheme": rule.scheme.spec(), "bias": "constructor" if rule.bias is None else rule.bias.spec(),
             "modules": [path for path, chosen_rule in chosen.items() if chosen_rule is rule]}
            for rule in rules
        ],
        "default": default,
        # Every weight layer set by a rule: the runs' own schemes draw nothing, so runs that differ
        # only in init.scheme are the same network (a sweep over it measures one net, relabelled).
        "default_unused": not any(entry["scheme"] == "default" for entry in modules.values()),
        "modules": modules,
    }
