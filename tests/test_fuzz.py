"""Property-based tests of everything a user types: config files, overrides, scheme and
activation specs, and the command line's flags.

The property, for every generated input: either it is refused with an
:class:`~initbench.core.errors.InitbenchError` (exit 2 on the command line) whose text names the field
or flag at fault, or it runs. Nothing else may happen: no other exception, no exit 1. Inputs are
one or two changes to a tiny valid config (2 layers of 4 units, batch 8), so the runs are cheap;
"runs" means the experiment's own checks and its measured pass (training is cut to 3 steps), not
the figures and files around it, which the CLI tests cover. Every test counts its own cases,
prints how many it tried (``pytest -s``), and asserts it tried as many as it was set to, some of
them refused and some run. Hypothesis is derandomized and keeps no database (tests/conftest.py), so
every run tries the same cases, whichever tests run before or beside it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from initbench.config.loading import load_config, validate_config
from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import SilentProgress
from initbench.core.registry import format_spec
from initbench.core.yamlinput import load_yaml
from initbench.experiments.base import EXPERIMENTS, RunContext, build_runs
from initbench.nets.activations import ACTIVATIONS
from initbench.schemes.base import SCHEMES

TINY: dict[str, Any] = {"name": "fuzz", "device": "cpu", "model": {"depth": 2, "width": 4}, "init": {"scheme": "he"}, "input": {"batch": 8}}
#: Training runs of the fuzz stop after this many steps: the property is that they run.
FUZZ_TRAIN_STEPS = 3
#: Cases that run a net are slow to hypothesis's eye; derandomized and without a database, like every
#: property test here (the profile in conftest.py).
FUZZ = {"suppress_health_check": [HealthCheck.too_slow]}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these nets are tiny, and on a busy machine idle threads' spinning costs more than they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cheaply(config: Config) -> None:
    """The experiment's checks and its measured pass, on the CPU."""
    experiment = EXPERIMENTS.get(config.experiment)()
    device = torch.device("cpu")
    experiment.check(config, device)
    if config.train is not None:
        config.train.steps = min(config.train.steps, FUZZ_TRAIN_STEPS)
    context = RunContext(config, device, torch.float32 if config.dtype == "float32" else torch.float64, SilentProgress())
    experiment.measure(context, build_runs(config))


class Tally:
    """The cases one fuzz test tried: how many ran, and how many were refused."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.ran = 0
        self.refused = 0

    def refused_naming_or_ran(self, names: list[str], attempt: Callable[[], Config]) -> None:
        """The property: ``attempt`` raises an InitbenchError naming one of ``names``, or its config runs."""
        try:
            config = attempt()
            run_cheaply(config)
        except InitbenchError as error:
            text = str(error).lower()
            assert any(name.lower() in text for name in names), f"{names} not named in: {error}"
            self.refused += 1
        else:
            self.ran += 1

    def check(self, target: int) -> None:
        """At least ``target`` cases, and both outcomes among them: a fuzz that only refuses (or only
        runs) tests half of its property."""
        print(f"\n{self.test}: {self.ran + self.refused} cases ({self.ran} ran, {self.refused} refused)")
        assert self.ran + self.refused >= target and self.ran > 0 and self.refused > 0


# --- What users write ---------------------------------------------------------------------------

INTEGERS = st.one_of(st.integers(-2, 4), st.sampled_from([2**63, 2**64, 10**30, 10**7, 10**12]))
FLOATS = st.one_of(
    st.floats(-5, 5, allow_nan=False), st.sampled_from([1e-3, 1e38, 1e39, 1e300, -1e300, math.nan, math.inf, -math.inf])
)
WORDS = st.sampled_from(
    ["relu", "tanh", "elu", "he", "zeros", "xavier", "normal:std=0.5", "auto", "critical", "fan_out", "circles", "moons", "xor",
     "teacher:n_train=20,n_test=10", "digits", "adam", "sgd", "train", "gradients", "forward", "float64", "cuda", "", "[", "a[b]c",
     "x" * 100, "nope.npz", "1e-3", ".nan", "true", "&a [*a]", "{a: 1, a: 2}"]
)
SCALARS = st.one_of(INTEGERS, FLOATS, WORDS, st.booleans(), st.none(), st.text(max_size=8))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.sampled_from(["name", "std", "a", "noise"]), SCALARS, max_size=2))

KEYS = [
    "name", "experiment", "seed", "seeds", "device", "dtype", "model.depth", "model.width", "model.hidden", "model.activation",
    "model.bias", "init.scheme", "init.schemes", "init.bias", "init.gain", "init.mode", "init.std", "init.mean", "input.batch",
    "train.dataset", "train.steps", "train.lr", "train.optimizer", "train.momentum", "train.weight_decay", "train.batch_size",
    "train.eval_every", "train.target_accuracy", "train.data_seed", "modle.depth", "model.depht", "input.batchsize", "init",
]
#: A dataset that is cheap to train on: 16 rows, and no decision-boundary grid (regression).
CHEAP_DATASET = "teacher:n_train=16,n_test=8,input_dim=3"
#: Values each key accepts (with the tiny config, or a training run for train keys): most changes
#: use one, so that a good share of the cases are valid and run.
VALID: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["a", "run-2", "x.y_z"]), "experiment": st.sampled_from(["forward", "gradients", "all", "train"]),
    "seed": st.sampled_from([0, 7, 2**64 - 1]), "seeds": st.integers(1, 2), "device": st.sampled_from(["cpu", "auto"]),
    "dtype": st.sampled_from(["float32", "float64"]), "model.depth": st.integers(1, 3), "model.width": st.integers(1, 4),
    "model.activation": st.sampled_from([*ACTIVATIONS.names(), "leaky_relu:negative_slope=0.2", "elu:alpha=0.5"]),
    "model.bias": st.booleans(), "init.scheme": st.sampled_from(SCHEMES.names(include_aliases=True)),
    "init.schemes": st.lists(st.sampled_from(["zeros", "he", "normal:std=0.1", "orthogonal"]), min_size=1, max_size=2, unique=True),
    "init.bias": st.sampled_from(["zeros", "normal:std=0.1", "default", "constant:value=0.5"]),
    "init.gain": st.one_of(st.floats(0, 3), st.sampled_from(["auto", "preserving"])), "init.mode": st.sampled_from(["fan_in", "fan_out"]),
    "init.std": st.floats(0, 2), "init.mean": st.floats(-1, 1), "input.batch": st.integers(1, 8),
    "train.dataset": st.sampled_from(["circles:n_train=16,n_test=8", "moons:noise=0.2,n_train=16,n_test=8", "xor:n_train=16,n_test=8", "blobs:n_train=16,n_test=8", CHEAP_DATASET]),
    "train.steps": st.integers(1, 5), "train.lr": st.floats(1e-4, 1), "train.optimizer": st.sampled_from(["sgd", "adam"]),
    "train.momentum": st.floats(0, 0.9), "train.weight_decay": st.floats(0, 0.1), "train.batch_size": st.one_of(st.none(), st.integers(1, 50)),
    "train.eval_every": st.integers(1, 10), "train.target_accuracy": st.one_of(st.none(), st.floats(0.1, 1)), "train.data_seed": st.integers(0, 3),
}
CHANGE = st.tuples(st.sampled_from(KEYS), st.integers(0, 3)).flatmap(
    lambda key_and_dice: st.tuples(st.just(key_and_dice[0]), VALUES if key_and_dice[1] == 0 else VALID.get(key_and_dice[0], VALUES))
)
CHANGES = st.lists(CHANGE, min_size=1, max_size=2)
#: Changes that make the tiny config a training run, so the train keys are exercised too.
TRAINING = st.just([("experiment", "train"), ("train.dataset", CHEAP_DATASET)])


def names_of(key: str, value: Any) -> list[str]:
    """What an error about ``key`` may name: the key, its last part, its section where that is no
    section of the config (``modle`` in ``modle.depth``), or the value it was set to, quoted.

    Not a section that exists: "model" is in every message about the model, whichever key is at
    fault. A memory refusal names the keys to reduce (``model.depth``), so it needs no word of its own.
    """
    parts = key.split(".")
    names = [key, parts[-1]] + ([parts[0]] if parts[0] not in Config.model_fields else [])
    if isinstance(value, str) and value:
        names.append("'" + value.split(":")[0])  # quoted: a bare 'a' is in almost any message
    return names


def changed(changes: list[tuple[str, Any]]) -> dict[str, Any]:
    """The tiny config with each ``(dotted key, value)`` set, sections made where missing."""
    raw = copy.deepcopy(TINY)
    for key, value in changes:
        *sections, leaf = key.split(".")
        target = raw
        for section in sections:
            if not isinstance(target.get(section), dict):
                target[section] = {}
            target = target[section]
        target[leaf] = value
    return raw


def test_config_files() -> None:
    """A config file: the tiny config with one or two keys set to anything YAML can hold."""
    tally = Tally("config files")

    @settings(max_examples=300, **FUZZ)
    @given(extra=st.one_of(st.just([]), TRAINING), changes=CHANGES)
    def case(extra: list[tuple[str, Any]], changes: list[tuple[str, Any]]) -> None:
        text = yaml.safe_dump(changed(extra + changes), allow_unicode=True)
        # "yaml " is in YAML's own refusals only ("YAML syntax error in fuzz, ..."), as the source has no suffix.
        names = [name for key, value in changes for name in names_of(key, value)] + ["yaml "]
        tally.refused_naming_or_ran(names, lambda: validate_config(load_yaml(text, "fuzz"), "fuzz"))

    case()
    tally.check(300)


TEXTS = st.one_of(
    WORDS, st.integers(-3, 5).map(str), st.sampled_from(["10**30", "1e400", "-1e400", "1e39", "2e-3", "[1, 2]", "[true]", "{", "}", "]",
                                                         "'3'", "3.0", ".inf", "-.inf", "null", "~", "yes", "0x10", "1_000"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)


def as_yaml_reads(text: str) -> Any:
    """An override's value as its parser reads it (``a⏎b`` is ``a b``), or the text where YAML refuses it."""
    try:
        return load_yaml(text, "fuzz")
    except InitbenchError:
        return text


def test_overrides() -> None:
    """An override ``KEY=TEXT``, its text parsed as YAML: most of them a valid value written as YAML."""
    tally = Tally("overrides")

    @settings(max_examples=300, **FUZZ)
    @given(extra=st.one_of(st.just([]), st.just(["experiment=train", f"train.dataset={CHEAP_DATASET}"])), key=st.sampled_from(KEYS), data=st.data())
    def case(extra: list[str], key: str, data: st.DataObject) -> None:
        valid = VALID.get(key, TEXTS).map(lambda value: yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip())
        text = data.draw(TEXTS if data.draw(st.integers(0, 2)) == 0 else valid)
        names = names_of(key, as_yaml_reads(text)) + ["override"]
        tally.refused_naming_or_ran(names, lambda: load_config(None, [*extra, f"{key}={text}"], base=TINY))

    case()
    tally.check(300)


def spec_strategy(registry: Any) -> st.SearchStrategy[tuple[str, list[str]]]:
    """``(spec, names)``: a registered name (or a typo) with some of its options (or unknown ones),
    and what an error about it may name: the name as written or as registered (``pretrained`` is
    ``checkpoint``), an option, or the spec. Not the registry's kind: "scheme" is in every such message."""
    names = registry.names(include_aliases=True)

    @st.composite
    def specs(draw: st.DrawFn) -> tuple[str, list[str]]:
        name = draw(st.one_of(st.sampled_from(names), st.sampled_from(["", "xaviar", "rleu", "no pe"])))
        fields = list(getattr(registry.get(name), "model_fields", {})) if name in registry else []
        named = [name or "empty", *([registry.canonical(name)] if name in registry else [])]
        keys = draw(st.lists(st.one_of(st.sampled_from(fields or ["gain"]), st.sampled_from(["gian", "std", "x"])), max_size=2, unique=True))
        options = {key: draw(st.one_of(SCALARS, TEXTS)) for key in keys}
        if draw(st.booleans()):
            return format_spec(name, options), [*named, *keys]
        raw = name + ":" + ",".join(f"{key}={draw(TEXTS)}" for key in keys)  # free text, commas and all
        return raw, [*named, *keys, "option", raw]

    return specs()


def test_scheme_specs() -> None:
    """A scheme spec, as an init scheme or as the bias scheme."""
    tally = Tally("scheme specs")

    @settings(max_examples=200, **FUZZ)
    @given(spec=spec_strategy(SCHEMES), bias=st.booleans())
    def case(spec: tuple[str, list[str]], bias: bool) -> None:
        text, names = spec
        init = {"schemes": ["he"], "bias": text} if bias else {"schemes": [text]}
        tally.refused_naming_or_ran(names, lambda: validate_config({**TINY, "model": {**TINY["model"], "bias": bias}, "init": init}, "fuzz"))

    case()
    tally.check(200)


def test_activation_specs() -> None:
    tally = Tally("activation specs")

    @settings(max_examples=100, **FUZZ)
    @given(spec=spec_strategy(ACTIVATIONS))
    def case(spec: tuple[str, list[str]]) -> None:
        text, names = spec
        tally.refused_naming_or_ran(names, lambda: validate_config({**TINY, "model": {**TINY["model"], "activation": text}}, "fuzz"))

    case()
    tally.check(100)


FLAGS = {
    "--depth": st.one_of(st.integers(-1, 3).map(str), st.sampled_from(["10000000", "100000000000000000000", "abc", "1.5", "true"])),
    "--width": st.one_of(st.integers(-1, 4).map(str), st.sampled_from(["100000000000", "abc", ""])),
    "--batch": st.one_of(st.integers(-1, 8).map(str), st.sampled_from(["100000000000000", "x"])),
    "--seeds": st.one_of(st.integers(-1, 3).map(str), st.sampled_from(["1000000000000", "18446744073709551617"])),
    "--activation": st.one_of(WORDS, st.sampled_from(["leaky_relu:negative_slope=0.2", "elu:alpha=1e39", "tanh:x=1", "gelu"])),
    "--experiment": st.sampled_from(["forward", "gradients", "all", "train", "forwrd", ""]),
    "--dataset": st.one_of(WORDS, st.sampled_from(["circles:noise=1e300", "moons:noise=-1", "xor:n_train=5,n_test=5", "blobs:centers=1"])),
    "--steps": st.one_of(st.integers(-1, 3).map(str), st.sampled_from(["100000000000000000", "nan"])),
    "--lr": st.sampled_from(["0.1", "0", "-1", "nan", "inf", "1e400", "1e300", "abc"]),
    "--device": st.sampled_from(["cpu", "auto", "tpu", "cuda" if not torch.cuda.is_available() else "cpu"]),
}
#: What an error about a flag may name: the flag, or the key it sets (a memory refusal names the keys to reduce).
FLAG_NAMES = {flag: [flag, flag.removeprefix("--")] for flag in FLAGS} | {"--seeds": ["--seeds", "seeds", "seed"]}


@pytest.fixture
def cheap_cli(cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The CLI, with a run's execution replaced by :func:`run_cheaply`, and a tiny base config."""
    monkeypatch.setattr("initbench.cli.app.execute_and_report", lambda config, out, quiet: run_cheaply(config))
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump(TINY))
    return cli, base


def test_command_line_flags(cheap_cli) -> None:
    """``initbench compare SCHEME --config tiny.yaml FLAGS``: exit 0 having run, or exit 2 naming a flag or the scheme."""
    cli, base = cheap_cli
    tally = Tally("command-line flags")

    @settings(max_examples=200, **FUZZ)
    @given(scheme=st.one_of(WORDS.map(lambda word: (word, [word.split(":")[0] or "empty"])), spec_strategy(SCHEMES)), flags=st.dictionaries(st.sampled_from(list(FLAGS)), st.none(), max_size=3).flatmap(
        lambda chosen: st.fixed_dictionaries({flag: FLAGS[flag] for flag in chosen})))
    def case(scheme: tuple[str, list[str]], flags: dict[str, str]) -> None:
        spec, scheme_names = scheme
        result = cli("compare", spec, "--config", base, *(part for flag, value in flags.items() for part in (flag, value)))
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 2:
            names = [name for flag in flags for name in FLAG_NAMES[flag]] + scheme_names
            assert "Traceback" not in result.output and any(name.lower() in result.output.lower() for name in names), result.output
            tally.refused += 1
        else:
            tally.ran += 1

    case()
    tally.check(200)
