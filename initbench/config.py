"""The run configuration: a pydantic model read from YAML, with Hydra-style ``key=value`` overrides.

Example config (every key optional except where noted)::

    name: relu_kaiming          # the run directory is results/<name>-<timestamp>/
    experiment: forward         # what to run (``initbench list experiments``)
    seed: 0                     # first seed; runs use seed .. seed + seeds - 1
    seeds: 1
    device: auto                # auto | cpu | cuda
    dtype: float32              # float32 | float64
    model:
      depth: 100                # square layers of `width` units
      width: 256
      activation: relu          # a name, "name:key=value", or {name: ..., key: value}
      bias: false
    init:
      scheme: kaiming_normal    # or "kaiming_normal:mode=fan_out", or "mypkg.inits:my_init" (a plugin), or ...
      mode: fan_in              # ... the scheme's options as sibling keys
      bias: zeros               # how biases are drawn (a scheme spec)
      # schemes: [zeros, "normal:std=0.01", he]   # instead of scheme: one run per entry
      # rules:                  # per-module schemes, first match wins (see initbench.rules)
      #   - {match: Conv2d, scheme: "kaiming_normal:mode=fan_out,nonlinearity=relu", bias: zeros}
      #   - {match: BatchNorm2d, scheme: ones, bias: zeros}
    input:
      batch: 1024               # rows of N(0, 1) inputs
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from initbench.activations import ACTIVATIONS, Activation, check_representable
from initbench.architectures import ParamContext
from initbench.engine import MAX_DEPTH
from initbench.errors import InitbenchError, from_validation_error
from initbench.plugins import build_scheme, parse_scheme_spec, scheme_from_spec
from initbench.registry import STRICT, build_from_spec, format_spec, parse_scalar
from initbench.rules import ResolvedRule
from initbench.schemes import InitScheme
from initbench.yamlinput import MAX_YAML_CHARS, load_yaml


def spec_from_mapping(value: Any, key: str, example: str) -> Any:
    """Accept ``{name: moons, noise: 0.2}`` for ``key`` as the spec string ``moons:noise=0.2``."""
    if not isinstance(value, dict):
        return value
    options = dict(value)
    if "name" not in options:
        raise InitbenchError(f"{key}: a mapping needs a 'name' key.", hint=f"For example {example}.")
    return format_spec(str(options.pop("name")), options)


#: The largest seed: torch's generators take seeds in [0, 2⁶⁴).
MAX_SEED = 2**64 - 1


def check_draws(what: str, scheme: InitScheme, dtype: torch.dtype) -> None:
    """Refuse a scheme whose draws overflow ``dtype`` (``uniform:b=1e300`` in float32, ``xavier:gain=1e200``),
    or whose variance, which the theory uses, overflows float64 (``normal:std=1e200``).

    It draws a 2×2 weight with fans of 1, the largest variance a fan-scaled scheme gives any layer.
    """
    if scheme.keeps_constructor_init or not scheme.trial_draw:
        return  # it draws nothing (the model's constructor does), or a stand-in weight cannot try it
    weight = torch.empty(2, 2, dtype=dtype)
    try:
        scheme.sample_(weight, ParamContext("check", "Linear", "weight", (2, 2), 1, 1, 1, 1), torch.Generator().manual_seed(0))
        variance = scheme.weight_variance(1, 1)
        finite = bool(torch.isfinite(weight).all()) and (variance is None or math.isfinite(variance + scheme.weight_mean() ** 2))
    except (ArithmeticError, RuntimeError):  # Python's float overflow, torch's "out of bounds for float"
        finite = False
    if not finite:
        dtype_name = str(dtype).removeprefix("torch.")
        raise InitbenchError(f"{what}: its weights overflow {dtype_name}.", hint=f"Give it smaller options: {dtype_name} holds magnitudes up to {torch.finfo(dtype).max:.3g}.")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", **STRICT)


class ModelConfig(Section):
    """The network: an architecture of ``depth`` layers of ``width`` units, or a user's module.

    ``arch``: ``mlp`` (fully connected), ``resmlp`` (``depth`` residual blocks
    x ← x + W₂ φ(norm(W₁ x))), ``cnn`` (``depth`` 3×3 convolutions of ``width`` channels) or
    ``module`` (``factory`` called with ``kwargs``). ``norm`` follows every weight layer (inside the
    branch for resmlp). For training, ``depth`` counts hidden layers and an output layer sized by the
    dataset follows; ``hidden: [10, 5]`` lists an mlp's hidden widths instead. Modules run in train
    mode, as a freshly built model does, unless ``eval`` is true.
    """

    arch: Literal["mlp", "resmlp", "cnn", "module"] = "mlp"
    depth: int = Field(default=100, ge=1, le=MAX_DEPTH)
    width: int = Field(default=256, ge=1)
    hidden: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)
    activation: str = "relu"
    bias: bool = False
    norm: Literal["none", "batchnorm", "layernorm"] = "none"
    eval: bool = False
    factory: str | None = None  # module: "package.module:callable", imported only when a run builds it
    kwargs: dict[str, Any] = Field(default_factory=dict)  # module: the factory's keyword arguments

    @model_validator(mode="after")
    def _hidden_or_depth(self) -> ModelConfig:
        if self.hidden is not None and {"depth", "width"} & self.model_fields_set:
            raise InitbenchError("model: give either 'hidden' or 'depth' and 'width', not both.")
        if self.hidden is not None and self.arch != "mlp":
            raise InitbenchError(f"model.hidden lists an mlp's widths; arch {self.arch} uses depth and width.")
        if (self.arch == "module") != (self.factory is not None):
            raise InitbenchError(
                "model.factory goes with model.arch: module, and arch module needs a factory.",
                hint='For example model: {arch: module, factory: "torch.nn:TransformerEncoderLayer", kwargs: {d_model: 64, nhead: 4}}.',
            )
        if self.kwargs and self.arch != "module":
            raise InitbenchError("model.kwargs are the factory's arguments: they go with model.arch: module.")
        if self.arch == "module" and {"depth", "width", "norm", "bias"} & self.model_fields_set:
            raise InitbenchError("model.depth, width, norm and bias describe the built-in nets; a module's factory decides its own.")
        return self

    def hidden_widths(self) -> list[int]:
        """The hidden layers' widths: ``hidden``, or ``depth`` layers of ``width``."""
        return list(self.hidden) if self.hidden is not None else [self.width] * self.depth

    @field_validator("activation", mode="before")
    @classmethod
    def _activation_spec(cls, value: Any) -> Any:
        return spec_from_mapping(value, "model.activation", "{name: leaky_relu, negative_slope: 0.2}")

    @field_validator("activation")
    @classmethod
    def _activation_exists(cls, value: str) -> str:
        build_from_spec(ACTIVATIONS, value)
        return value

    def build_activation(self) -> Activation:
        return build_from_spec(ACTIVATIONS, self.activation)


class InitRule(Section):
    """One entry of ``init.rules``: the modules whose class name or dotted path the glob ``match``
    matches get ``scheme`` for their weight and ``bias`` for their bias (default: ``init.bias``;
    with ``scheme: constructor``, the constructor's bias). See :mod:`initbench.rules`."""

    match: str = Field(min_length=1)
    scheme: str
    bias: str | None = None

    @field_validator("scheme", "bias", mode="before")
    @classmethod
    def _spec(cls, value: Any, info: Any) -> Any:
        return spec_from_mapping(value, f"init.rules {info.field_name}", "{name: kaiming_normal, mode: fan_out}")


class InitConfig(BaseModel):
    """How weights (and biases) are drawn: one ``scheme`` with its options, or a list of ``schemes``,
    and optionally per-module ``rules`` that override them (the first rule matching a module sets it).

    The scheme's own options sit beside ``scheme`` as sibling keys, so this section accepts extra
    keys and checks them against the scheme instead of against a fixed list.
    """

    model_config = ConfigDict(extra="allow", **STRICT)

    scheme: str | None = None
    _schemes: list[tuple[str, InitScheme]] = PrivateAttr(default_factory=list)
    _bias: InitScheme = PrivateAttr()
    schemes: list[str] | None = Field(default=None, min_length=1)
    bias: str = "zeros"
    rules: list[InitRule] | None = Field(default=None, min_length=1)
    _rules: list[tuple[InitScheme, InitScheme | None]] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _check_schemes(self) -> InitConfig:
        if (self.scheme is None) == (self.schemes is None):
            raise InitbenchError("init: give exactly one of 'scheme' or 'schemes'.", hint="For example init.scheme=he, or init.schemes=[zeros, he].")
        if self.schemes is not None and self.model_extra:
            raise InitbenchError(
                f"init: options {sorted(self.model_extra)} only go with a single 'scheme'.",
                hint="With 'schemes', write each one's options inline, as in \"normal:std=0.01\".",
            )
        if self.schemes is not None and len(set(self.schemes)) != len(self.schemes):
            raise InitbenchError(f"init.schemes lists a scheme twice: {self.schemes}.")
        self._schemes = self._parse_schemes()
        self._bias = bias = scheme_from_spec(self.bias)
        if not bias.fills_bias:
            raise InitbenchError(f"init.bias: scheme '{self.bias}' {bias.no_bias_reason}, so it cannot initialize a bias.", hint="Use zeros, constant, normal, uniform or default for biases.")
        self._rules = [self._parse_rule(index, rule) for index, rule in enumerate(self.rules or [])]
        return self

    @staticmethod
    def _parse_rule(index: int, rule: InitRule) -> tuple[InitScheme, InitScheme | None]:
        """A rule's (scheme, bias) objects; a bad spec is the usual error, naming the rule."""
        where = f"init.rules[{index}] (match '{rule.match}')"
        try:
            scheme = scheme_from_spec(rule.scheme)
            bias = None if rule.bias is None else scheme_from_spec(rule.bias)
        except InitbenchError as error:
            raise InitbenchError(f"{where}: {error.message}", hint=error.hint) from None
        if bias is not None and not bias.fills_bias:
            raise InitbenchError(f"{where}: bias scheme '{rule.bias}' {bias.no_bias_reason}, so it cannot initialize a bias.", hint="Use zeros, constant, normal, uniform or default for biases.")
        if scheme.needs_model or scheme.needs_data:
            # A rule draws some modules' parameters; these act on the whole model (Fixup's branches,
            # LSUV's layer-by-layer fit, a checkpoint's state dict), so they go in init.scheme.
            raise InitbenchError(f"{where}: scheme '{rule.scheme}' acts on the whole model, not on the modules a rule matches.", hint="Give it as init.scheme, with the rules for the other modules.")
        return scheme, bias

    def build_rules(self) -> list[tuple[InitRule, InitScheme, InitScheme | None]]:
        """``(rule, scheme, bias or None)`` per rule, in order, parsed once when the config was validated."""
        return [(rule, scheme, bias) for rule, (scheme, bias) in zip(self.rules or [], self._rules, strict=True)]

    def build_schemes(self) -> list[tuple[str, InitScheme]]:
        """``(label, scheme)`` per run; the label is the scheme as written (``normal:std=0.01``).

        Parsed once, when the config is validated; every caller gets those objects.
        """
        return list(self._schemes)

    def _parse_schemes(self) -> list[tuple[str, InitScheme]]:
        if self.schemes is not None:
            return [(spec, scheme_from_spec(spec)) for spec in self.schemes]
        assert self.scheme is not None
        name, inline = parse_scheme_spec(self.scheme)
        twice = sorted(set(inline) & set(self.model_extra or {}))
        if twice:
            raise InitbenchError(f"init: option {twice[0]} is given twice, in init.scheme '{self.scheme}' and as init.{twice[0]}.", hint="Give each option once.")
        options = {**inline, **(self.model_extra or {})}
        return [(format_spec(name, options), build_scheme(name, options))]

    def build_bias(self) -> InitScheme:
        return self._bias


class TrainConfig(Section):
    """Short training runs: dataset, optimizer and schedule (``experiment: train``)."""

    dataset: str = "circles"  # a registered dataset spec ("moons:noise=0.2"), or a path to a .npz
    data_seed: int = Field(default=0, ge=0, le=MAX_SEED)  # the dataset's draw, separate from the init seeds
    steps: int = Field(default=1000, ge=1)
    lr: float = Field(default=0.01, gt=0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(default=0.0, ge=0, lt=1)  # sgd only
    weight_decay: float = Field(default=0.0, ge=0)  # L2 penalty, as torch.optim's weight_decay
    batch_size: int | None = Field(default=None, ge=1)  # None: full batch (gradient descent)
    eval_every: int = Field(default=100, ge=1)
    target_accuracy: float | None = Field(default=0.9, gt=0, le=1)  # for "steps to reach"
    save_models: bool = False  # write each run's final state_dict to models/<label>-seed<k>.pt (for the checkpoint scheme)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_spec(cls, value: Any) -> Any:
        return spec_from_mapping(value, "train.dataset", "{name: moons, noise: 0.2}")

    @model_validator(mode="after")
    def _no_ignored_options(self) -> TrainConfig:
        if self.optimizer == "adam" and self.momentum != 0:
            raise InitbenchError(f"train.momentum={self.momentum} is for optimizer sgd; adam ignores it.", hint="Drop momentum, or use optimizer: sgd.")
        return self


class PhaseConfig(Section):
    """The order–chaos phase diagram (``experiment: phase``): grids over σ_w² and σ_b² as
    ``START:STOP:N``, or one value; ``measure`` also measures correlation convergence in real nets
    of ``model.depth`` × ``model.width``."""

    sw2: str = "0.25:4:24"
    sb2: str = "0:0.5:11"
    measure: bool = False

    @field_validator("sw2", "sb2", mode="before")
    @classmethod
    def _one_value(cls, value: Any) -> Any:
        """``sb2: 0.1`` in YAML is a number; as a grid it is the text ``0.1``."""
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("sw2", "sb2")
    @classmethod
    def _grid(cls, value: str, info: Any) -> str:
        from initbench.phase import parse_grid

        parse_grid(value, f"phase.{info.field_name}")
        return value


class GainConfig(Section):
    """Gains of ``model.activation`` (``experiment: gain``), measured in a ``model.depth`` ×
    ``model.width`` net fed ``input.batch`` rows."""

    sb2: float = Field(default=0.0, ge=0)  # bias variance σ_b²


class InputConfig(Section):
    """The inputs of the forward and gradients experiments: i.i.d. N(0, 1) values.

    ``batch`` rows of ``width`` features for the mlp and resmlp; ``batch`` images of ``channels`` ×
    ``image_size``² for the cnn; a tensor of ``shape`` (batch first) for a module, or with
    ``tokens: V`` integer tokens in [0, V) of that shape (embedding models). With ``dataset``, the
    first examples of that dataset's training split instead, reshaped to the same shape.
    """

    batch: int = Field(default=1024, ge=1)
    channels: int = Field(default=3, ge=1)
    image_size: int = Field(default=16, ge=1)
    shape: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)
    tokens: int | None = Field(default=None, ge=1)
    dataset: str | None = None  # a dataset spec (digits, "moons:noise=0.2") or .npz path: real inputs

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_spec(cls, value: Any) -> Any:
        return spec_from_mapping(value, "input.dataset", "{name: digits}")

    @model_validator(mode="after")
    def _shape_or_batch(self) -> InputConfig:
        if self.shape is not None and "batch" in self.model_fields_set:
            raise InitbenchError("input: give either 'shape' (batch first) or 'batch', not both.")
        if self.tokens is not None and self.shape is None:
            raise InitbenchError("input.tokens needs input.shape, the shape of the token tensor (batch first).")
        if self.tokens is not None and self.dataset is not None:
            raise InitbenchError("input: give either 'tokens' or 'dataset', not both.")
        return self

    def batch_size(self) -> int:
        return self.shape[0] if self.shape is not None else self.batch


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

    def uses_fast_engine(self) -> bool:
        """Whether the runs go through the stacked MLP engine and trainer (the plain MLP, drawn by its
        schemes) rather than the module backend (every other network, schemes that act on the whole
        model or are fitted to a batch, training that saves its models in the model's own key layout,
        and any net with ``init.rules``, which match module types and paths)."""
        return (
            self.model.arch == "mlp"
            and self.model.norm == "none"
            and self.init.rules is None
            and (self.input.dataset is None or self.experiment == "train")
            and not any(scheme.keeps_constructor_init or scheme.needs_model or scheme.needs_data for _, scheme in self.init.build_schemes())
            and not (self.train is not None and self.train.save_models)
        )

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


#: Used by ``initbench compare`` without ``--config``: the classic 100-layer, 256-unit ReLU net.
DEFAULT_COMPARE: dict[str, Any] = {
    "name": "compare",
    "model": {"depth": 100, "width": 256, "activation": "relu"},
    "input": {"batch": 1024},
}

#: Used by ``initbench compare --experiment train`` without ``--config``: the deeplearning.ai
#: [2, 10, 5, 1] ReLU net on circles, trained by full-batch gradient descent.
DEFAULT_TRAIN_COMPARE: dict[str, Any] = {
    "name": "compare-train",
    "experiment": "train",
    "model": {"hidden": [10, 5], "activation": "relu", "bias": True},
    "train": {"dataset": "circles", "steps": 2000, "lr": 0.1, "eval_every": 50},
}



def compare_config(raw: dict[str, Any], source: str | None, schemes: list[str], options: Mapping[str, tuple[str, Any]], overrides: list[str]) -> Config:
    """The config ``initbench compare`` (and the API's ``compare``) runs: ``raw`` with one run per
    scheme in place of its init (its bias kept), then ``overrides`` and the given ``options``.

    ``options`` maps a config key to (the option's name as the user wrote it, ``--depth`` or
    ``depth``; its value, None when not given), so that every error names what the user typed.
    ``model.depth`` or ``model.width`` replaces the base's ``model.hidden``.
    """
    value = {key: given for key, (_, given) in options.items()}
    name = {key: written for key, (written, _) in options.items()}
    chosen = value.get("experiment") or raw.get("experiment", "forward")
    training = [name[key] for key in ("train.dataset", "train.steps", "train.lr") if value.get(key) is not None]
    if chosen != "train" and training:
        raise InitbenchError(f"{', '.join(training)}: only {name['experiment']} train uses them; experiment '{chosen}' would ignore them.", hint=f"Add {name['experiment']} train, or drop them.")
    if chosen == "train" and value.get("input.batch") is not None:
        raise InitbenchError(f"{name['input.batch']}: experiment train ignores it (its batches come from the dataset).", hint="Set train.batch_size in a config for minibatches.")
    init = raw.get("init") if isinstance(raw.get("init"), dict) else {}
    raw = {**raw, "init": {"schemes": list(schemes), **({"bias": init["bias"]} if "bias" in init else {})}}
    if (value.get("model.depth") is not None or value.get("model.width") is not None) and isinstance(raw.get("model"), dict):
        raw["model"] = {key: setting for key, setting in raw["model"].items() if key != "hidden"}
    given = {key: (written, setting) for key, (written, setting) in options.items() if setting is not None}
    flags = [f"{key}={str(setting).lower() if isinstance(setting, bool) else setting}" for key, (_, setting) in given.items()]
    return validate_config(apply_overrides(raw, [*overrides, *flags]), source, {key: written for key, (written, _) in given.items()})

def _valid_keys(location: tuple[Any, ...]) -> list[str]:
    """The keys valid at ``location`` in the config (for "did you mean" suggestions)."""
    model: type[BaseModel] = Config
    for part in location:
        if isinstance(part, int):  # an item of a list of sections (init.rules.0)
            continue
        field = model.model_fields.get(str(part))
        # A section may be optional (``TrainConfig | None``) or a list (``list[InitRule] | None``): look through both.
        candidates = list(get_args(field.annotation) or (field.annotation,)) if field else []
        candidates += [inner for candidate in candidates for inner in get_args(candidate)]
        sections = [candidate for candidate in candidates if isinstance(candidate, type) and issubclass(candidate, BaseModel)]
        if not sections:
            return []
        model = sections[0]
    return list(model.model_fields)


def validate_config(raw: dict[str, Any], source: str | None, options: Mapping[str, str] | None = None) -> Config:
    """Validate a raw mapping into a :class:`Config`; every problem is one bullet of the error.

    ``source`` names the config file (None: there is none, the values came from the command
    line); ``options`` maps the dotted keys that command-line options set to those options, so
    that an error names ``--depth`` where the user typed ``--depth``.
    """
    context = f"config {source}" if source is not None else "command line"
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise from_validation_error(error, context, _valid_keys, options) from None
    except InitbenchError as error:  # raised by a section's own checks (schemes, activation)
        raise InitbenchError(f"Invalid {context}: {error.message}", hint=error.hint) from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` within the bounds of :mod:`initbench.yamlinput`; errors name the file and line."""
    try:
        with path.open(encoding="utf-8") as stream:
            text = stream.read(MAX_YAML_CHARS + 1)  # never more: the path may be /dev/zero
    except FileNotFoundError:
        raise InitbenchError(f"Config file '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:  # a directory, no permission, a symlink loop, not UTF-8
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InitbenchError(f"Cannot read config file '{path}': {reason}.") from None
    data = load_yaml(text, str(path))
    if data is None:  # an empty file (or only comments) is more likely a mistake than a wish for every default
        raise InitbenchError(f"Config file '{path}' is empty.", hint="Give at least one key, e.g. `experiment: forward`, or a shipped config such as configs/relu_kaiming.yaml.")
    if not isinstance(data, dict):
        raise InitbenchError(f"Config file '{path}' must be a mapping of keys to values, not a {type(data).__name__}.")
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars) to a raw config.

    Setting ``init.scheme`` replaces the scheme *with its options*: option keys the file gave the
    old scheme are dropped, since they rarely fit the new one; options given as overrides, the
    bias and the rules stay.
    """
    result = copy.deepcopy(raw)  # nested mappings too: callers (a sweep's base) reuse ``raw``
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise InitbenchError(f"Cannot read override '{override}'.", hint="Write overrides as KEY=VALUE, for example model.depth=50.")
        path = key.strip().split(".")
        if path == ["init", "scheme"]:
            init = result.get("init") or {}
            result["init"] = {k: v for k, v in init.items() if k in ("bias", "rules")}
        target = result
        for part in path[:-1]:
            existing = target.get(part)
            if not isinstance(existing, dict):
                existing = {}
            target[part] = existing
            target = existing
        target[path[-1]] = parse_scalar(text, f"override {key.strip()}")
    if any(o.partition("=")[0].strip() == "init.scheme" for o in overrides):
        # Re-apply init options given as overrides, whatever their order relative to init.scheme.
        for override in overrides:
            key, _, text = override.partition("=")
            parts = key.strip().split(".")
            if len(parts) == 2 and parts[0] == "init":
                result["init"][parts[1]] = parse_scalar(text, f"override {key.strip()}")
    return result


def load_config(
    path: Path | None, overrides: list[str], base: dict[str, Any] | None = None, options: Mapping[str, str] | None = None
) -> Config:
    """The config from ``path`` (or ``base``), with ``overrides`` applied, validated (``options``:
    see :func:`validate_config`)."""
    raw = read_yaml(path) if path is not None else dict(base or {})
    return validate_config(apply_overrides(raw, overrides), str(path) if path is not None else None, options)
