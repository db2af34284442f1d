"""The whole run configuration, :class:`Config`: the sections, the experiment and seeds, and the
checks that need several sections at once.
"""

from __future__ import annotations

from typing import Literal

import torch
import yaml
from pydantic import Field, PrivateAttr, model_validator

from initbench.config.sections import (
    MAX_SEED,
    GainConfig,
    InitConfig,
    InputConfig,
    ModelConfig,
    PhaseConfig,
    Section,
    TrainConfig,
    check_draws,
)
from initbench.core.errors import InitbenchError
from initbench.nets.activations import check_representable
from initbench.schemes.base import InitScheme
from initbench.schemes.rules import ResolvedRule


class Config(Section):
    """One invocation of initbench: what to run, on which network, initialized how."""

    name: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=80)
    experiment: str = "forward"
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    seeds: int = Field(default=1, ge=1, le=MAX_SEED + 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    model: ModelConfig = ModelConfig()
    init: InitConfig = InitConfig(scheme="kaiming_normal")
    input: InputConfig = InputConfig()
    train: TrainConfig | None = None
    _resolved: list[tuple[str, InitScheme]] = PrivateAttr(default_factory=list)
    _resolved_bias: InitScheme = PrivateAttr()
    _resolved_rules: list[ResolvedRule] = PrivateAttr(default_factory=list)
    phase: PhaseConfig | None = None
    gain: GainConfig | None = None

    @model_validator(mode="after")
    def _train_section(self) -> Config:
        """A training, phase or gain run records the settings it used, defaults included."""
        if self.experiment == "train" and self.train is None:
            self.train = TrainConfig()
        if self.experiment == "phase" and self.phase is None:
            self.phase = PhaseConfig()
        if self.experiment == "gain" and self.gain is None:
            self.gain = GainConfig()
        if self.experiment != "train" and self.train is not None:
            given = ", ".join(f"train.{key}" for key in sorted(self.train.model_fields_set)) or "train"
            raise InitbenchError(f"{given}: only experiment train reads the train section; experiment '{self.experiment}' would ignore it.", hint="Drop it, or set experiment: train.")
        if self.experiment != "train" and self.model.hidden is not None:
            raise InitbenchError("model.hidden is for experiment: train; the forward and gradients experiments use depth and width.")
        if self.model.arch == "module" and self.experiment != "train" and self.input.shape is None:
            raise InitbenchError("model.arch module needs input.shape, the shape of its input with the batch first.", hint="For example input.shape=[8,16,64] (or --input-shape 8,16,64).")
        return self

    @model_validator(mode="after")
    def _schemes_resolve(self) -> Config:
        """Settle ``gain: auto|preserving|critical`` now, once, and try every scheme's draws and the
        activation in the run's dtype, so an impossible one is refused before any run."""
        activation = self.model.build_activation()
        dtype = getattr(torch, self.dtype)
        check_representable(activation, dtype, f"model.activation '{self.model.activation}'")  # first: torch's gains square its options
        self._resolved = [(label, scheme.resolve(activation)) for label, scheme in self.init.build_schemes()]
        self._resolved_bias = self.init.build_bias().resolve(activation)
        for label, scheme in self._resolved:
            check_draws(f"init scheme '{label}'", scheme, dtype)
        if self.model.bias:
            check_draws(f"init.bias '{self.init.bias}'", self._resolved_bias, dtype)
        for index, (rule, scheme, bias) in enumerate(self.init.build_rules()):
            where = f"init.rules[{index}] (match '{rule.match}')"
            resolved = ResolvedRule.of(index, rule.match, scheme, bias, self._resolved_bias, activation, where)
            check_draws(f"{where} scheme '{rule.scheme}'", resolved.scheme, dtype)
            if resolved.bias is not None:
                check_draws(f"{where} bias '{resolved.bias.spec()}'", resolved.bias, dtype)
            self._resolved_rules.append(resolved)
        return self

    def resolved_rules(self) -> list[ResolvedRule]:
        """``init.rules`` with every scheme resolved for the network, in order (empty without rules)."""
        return list(self._resolved_rules)

    def resolved_init(self) -> tuple[list[tuple[str, InitScheme]], InitScheme]:
        """``(label, resolved scheme)`` per scheme, and the resolved bias scheme: every option a number."""
        return list(self._resolved), self._resolved_bias

    def resolved_schemes(self) -> list[tuple[str, str]]:
        """``(label, resolved spec)`` per scheme: the numbers behind ``gain: auto`` and the like."""
        return [(label, scheme.spec()) for label, scheme in self._resolved]

    @model_validator(mode="after")
    def _seeds_fit(self) -> Config:
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise InitbenchError(f"seed {self.seed} with seeds {self.seeds} goes past the largest seed, 2⁶⁴ − 1.", hint="Use a smaller seed or fewer seeds.")
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    def to_yaml(self) -> str:
        """The resolved config as YAML; loading it gives back an equal config.

        Comment lines on top record the number each network-dependent option resolved to
        (``# xavier_uniform:gain=auto → xavier_uniform:gain=1.6666666666666667``).
        """
        data = self.model_dump(mode="json", exclude_none=True)
        model, inputs = data["model"], data["input"]
        # Keys that don't apply are left out: writing them back would be an error (hidden with depth,
        # a module with depth, shape with batch) or describe a network that isn't there.
        if self.model.hidden is not None:
            del model["depth"], model["width"]
        if self.model.arch == "module":
            for key in ("depth", "width", "norm", "bias"):
                del model[key]
        else:
            del model["kwargs"]
        if self.input.shape is not None:
            del inputs["batch"]
        if self.model.arch != "cnn":
            del inputs["channels"], inputs["image_size"]
        if self.train is not None and not self.train.save_models:
            # An output option, not part of the experiment: left out when off, so configs written
            # before it existed read the same.
            del data["train"]["save_models"]
        notes = "".join(f"# {label} → {resolved}\n" for label, resolved in self.resolved_schemes() if resolved != label)
        notes += "".join(
            f"# init.rules[{rule.index}] {written.scheme} → {rule.scheme.spec()}\n"
            for rule, (written, parsed, _) in zip(self._resolved_rules, self.init.build_rules(), strict=True)
            if rule.scheme.spec() != parsed.spec()
        )
        return notes + yaml.safe_dump(data, sort_keys=False)
