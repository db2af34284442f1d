"""The sections of a run configuration (``model``, ``init``, ``train``, ``phase``, ``gain``,
``input``): pydantic models that check their own keys, held by :class:`~initbench.config.run.Config`
and read by :mod:`~initbench.config.loading`.

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
      # rules:                  # per-module schemes, first match wins (see initbench.schemes.rules)
      #   - {match: Conv2d, scheme: "kaiming_normal:mode=fan_out,nonlinearity=relu", bias: zeros}
      #   - {match: BatchNorm2d, scheme: ones, bias: zeros}
    input:
      batch: 1024               # rows of N(0, 1) inputs
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from initbench.config.grids import parse_grid
from initbench.core.errors import InitbenchError
from initbench.core.registry import STRICT, build_from_spec, format_spec
from initbench.nets.activations import ACTIVATIONS, Activation
from initbench.nets.architectures import MAX_DEPTH, ParamContext
from initbench.schemes.base import InitScheme
from initbench.schemes.specs import build_scheme, parse_scheme_spec, scheme_from_spec


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
    with ``scheme: constructor``, the constructor's bias). See :mod:`initbench.schemes.rules`."""

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
        try:
            self._bias = bias = scheme_from_spec(self.bias)
        except InitbenchError as error:  # the usual error, naming the key (an empty spec has nothing else to name)
            raise InitbenchError(f"init.bias: {error.message}", hint=error.hint) from None
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
