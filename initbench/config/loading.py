"""Reading a config: YAML files, Hydra-style ``key=value`` overrides, validation into a
:class:`~initbench.config.run.Config` with one bullet per bad field, and the configs that the
compare and probe commands build (the CLI and the API both call :func:`compare_config` and
:func:`probe_config`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from initbench.config.run import Config
from initbench.core.errors import InitbenchError, from_validation_error
from initbench.core.registry import parse_scalar
from initbench.core.yamlinput import MAX_YAML_CHARS, load_yaml

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


def compare_config(
    raw: dict[str, Any] | None, source: str | None, schemes: list[str], options: Mapping[str, tuple[str, Any]], overrides: list[str]
) -> Config:
    """The config ``initbench compare`` (and the API's ``compare``) runs: ``raw`` (None: a copy of
    :data:`DEFAULT_COMPARE`, or :data:`DEFAULT_TRAIN_COMPARE` for experiment train) with one run per
    scheme in place of its init (its bias kept), then ``overrides`` and the given ``options`` (see
    :func:`build_config`). ``model.depth`` or ``model.width`` replaces the base's ``model.hidden``.
    """
    value = {key: given for key, (_, given) in options.items()}
    name = {key: written for key, (written, _) in options.items()}
    if raw is None:
        raw = copy.deepcopy(DEFAULT_TRAIN_COMPARE if value.get("experiment") == "train" else DEFAULT_COMPARE)
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
    return build_config(raw, source, overrides, options)


def probe_config(
    factory: str, experiment: str, schemes: list[str], shape: list[int] | None, options: Mapping[str, tuple[str, Any]], overrides: list[str]
) -> Config:
    """The config ``initbench probe`` (and the API's ``probe``) runs: the model ``factory`` builds, at
    its own init (no ``schemes``) or redrawn by each of ``schemes``, fed inputs of ``shape`` (None:
    the config's default), then ``overrides`` and the given ``options`` (see :func:`build_config`)."""
    raw: dict[str, Any] = {
        "name": "probe-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in factory.rpartition(":")[2])[:60],  # the callable's name
        "experiment": experiment,
        "model": {"arch": "module", "factory": factory},
        "init": {"schemes": list(schemes)} if schemes else {"scheme": "constructor"},
    }
    if shape is not None:
        raw["input"] = {"shape": shape}
    return build_config(raw, None, overrides, options)


def option_overrides(options: Mapping[str, tuple[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """The options a user gave as config overrides, and which option set each key.

    ``options`` maps a dotted config key to (the option's name as the user wrote it, ``--depth``
    or ``depth``; its value, None: not given), e.g. ``{"model.depth": ("--depth", 0)}`` →
    ``["model.depth=0"]`` and ``{"model.depth": "--depth"}``, so that the config's error says
    ``--depth``, the name the user typed.
    """
    given = {key: (name, value) for key, (name, value) in options.items() if value is not None}
    overrides = [f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, (_, value) in given.items()]
    return overrides, {key: name for key, (name, _) in given.items()}


def build_config(raw: dict[str, Any], source: str | None, overrides: list[str], options: Mapping[str, tuple[str, Any]]) -> Config:
    """``raw`` with ``overrides`` applied, then the ``options`` that were given (see
    :func:`option_overrides`), validated: an error names an option as the user wrote it."""
    flags, names = option_overrides(options)
    return validate_config(apply_overrides(raw, [*overrides, *flags]), source, names)


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
    """Read a YAML mapping from ``path`` within the bounds of :mod:`initbench.core.yamlinput`; errors name the file and line."""
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


def load_config(path: Path | None, overrides: list[str], base: dict[str, Any] | None = None) -> Config:
    """The config from ``path`` (or ``base``), with ``overrides`` applied, validated."""
    raw = read_yaml(path) if path is not None else dict(base or {})
    return validate_config(apply_overrides(raw, overrides), str(path) if path is not None else None)
