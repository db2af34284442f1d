"""Config loading and Hydra-style overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from initbench.config.loading import apply_overrides, load_config, validate_config
from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.registry import format_spec, parse_scalar, parse_spec
from tests.conftest import write_config

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("text", "value"), [("3", 3), ("0.01", 0.01), ("1e-3", 1e-3), ("auto", "auto"), ("true", True), ("fan_out", "fan_out"), ("[1, 2]", [1, 2])])
def test_values_are_yaml_scalars(text: str, value: object) -> None:
    assert parse_scalar(text, "test") == value


def test_spec_parsing() -> None:
    assert parse_spec("normal", "scheme") == ("normal", {})
    assert parse_spec("xavier_uniform:gain=auto", "scheme") == ("xavier_uniform", {"gain": "auto"})
    assert parse_spec("normal:mean=0.5, std=0.01", "scheme") == ("normal", {"mean": 0.5, "std": 0.01})


def test_overrides_reach_nested_keys() -> None:
    raw = apply_overrides({"model": {"depth": 100}}, ["model.depth=50", "input.batch=7", "seeds=3"])
    assert raw == {"model": {"depth": 50}, "input": {"batch": 7}, "seeds": 3}


def test_overriding_the_scheme_drops_the_old_schemes_options() -> None:
    config = load_config(REPO / "configs" / "relu_kaiming.yaml", ["model.depth=50", "init.scheme=xavier_normal"])
    assert config.model.depth == 50
    assert config.init.build_schemes()[0][0] == "xavier_normal"
    # Options given as overrides are kept, before or after init.scheme.
    raw = apply_overrides({"init": {"scheme": "he", "mode": "fan_out", "bias": "default"}}, ["init.gain=auto", "init.scheme=xavier"])
    assert raw["init"] == {"bias": "default", "scheme": "xavier", "gain": "auto"}


def test_scheme_labels() -> None:
    config = validate_config({"init": {"scheme": "normal:mean=0.1", "std": 0.01}}, "test")
    label, scheme = config.init.build_schemes()[0]
    assert label == "normal:mean=0.1,std=0.01" and scheme.std == 0.01 and scheme.mean == 0.1
    config = validate_config({"init": {"schemes": ["zeros", "normal:std=10", "he"]}}, "test")
    assert [label for label, _ in config.init.build_schemes()] == ["zeros", "normal:std=10", "he"]


def test_activation_as_a_mapping() -> None:
    config = validate_config({"model": {"activation": {"name": "leaky_relu", "negative_slope": 0.2}}}, "test")
    assert config.model.activation == "leaky_relu:negative_slope=0.2"
    assert config.model.build_activation().negative_slope == 0.2


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "tanh_xavier.yaml", ["model.bias=true", "init.bias=normal:std=0.05"])
    saved = write_config(tmp_path / "config.yaml", config.to_yaml())
    assert load_config(saved, []) == config


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"init": {"scheme": "he", "schemes": ["zeros"]}}, "exactly one"),
        ({"init": {"schemes": ["zeros", "normal:std=1"], "std": 2}}, "only go with a single"),
        ({"init": {"scheme": "he", "bias": "orthogonal"}}, "cannot initialize a bias"),
        ({"dtype": "float16"}, "float32"),
        ({"device": "tpu"}, "cuda"),
    ],
)
def test_invalid_configs(raw: dict, message: str) -> None:
    with pytest.raises(InitbenchError, match=message):
        validate_config(raw, "test")


def test_defaults_are_a_runnable_config() -> None:
    config = Config()
    assert config.seed_list() == [0] and config.init.build_schemes()[0][0] == "kaiming_normal"


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    load_config(path, [])


option_keys = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
option_values = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: x != int(x)), st.sampled_from(["auto", "fan_out", "relu"]))


@given(name=st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True), options=st.dictionaries(option_keys, option_values, max_size=4))
def test_spec_strings_round_trip(name: str, options: dict) -> None:
    assert parse_spec(format_spec(name, options), "scheme") == (name, options)


def test_overrides_never_change_the_callers_config() -> None:
    """A sweep applies every point's overrides to one base; none may leak into the next point."""
    base = {"model": {"activation": {"name": "leaky_relu", "negative_slope": 0.1}}}
    apply_overrides(base, ["model.activation.negative_slope=0.3"])
    assert base["model"]["activation"]["negative_slope"] == 0.1
