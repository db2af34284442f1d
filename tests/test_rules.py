"""Per-module init rules (``init.rules``) against torchvision's ``initialize_weights`` written with
``torch.nn.init``, the fast engine, and the CLI's errors and round trip."""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from initbench.config.loading import apply_overrides, validate_config
from initbench.core.errors import InitbenchError
from initbench.engines.base import Run
from initbench.engines.choice import MODULE, STACKED, select
from initbench.engines.modules import build_model, initialize
from initbench.experiments.assemble import init_rules_summary
from initbench.runs.sweeps.plan import stack_key
from tests.conftest import read_csv, write_config

TORCHVISION_RULES = [
    {"match": "head.*", "scheme": "normal:std=0.5", "bias": "constant:value=0.3"},
    {"match": "Conv2d", "scheme": "kaiming_normal:mode=fan_out,nonlinearity=relu", "bias": "zeros"},
    {"match": "BatchNorm2d", "scheme": "ones", "bias": "zeros"},
    {"match": "Linear", "scheme": "normal:std=0.01", "bias": "zeros"},
]


def cnn_config(rules: list[dict], scheme: str = "constructor", **model: object) -> dict:
    return {
        "device": "cpu",
        "model": {"arch": "cnn", "depth": 3, "width": 6, "activation": "relu", "norm": "batchnorm", "bias": True, **model},
        "init": {"scheme": scheme, "rules": rules},
        "input": {"batch": 4, "image_size": 6},
    }


def drawn(raw: dict, seed: int = 3, outputs: int | None = 5) -> nn.Module:
    """The model initbench builds and draws for ``raw``'s first scheme and ``seed``."""
    config = validate_config(raw, "test")
    (label, scheme), bias = config.resolved_init()[0][0], config.resolved_init()[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config, outputs, None)
    initialize(model, Run(label, seed, scheme, bias), bias, torch.Generator().manual_seed(seed), config.resolved_rules())
    return model


def constructed(raw: dict, seed: int = 3, outputs: int | None = 5) -> nn.Module:
    """The same model as its constructor leaves it (torch's global RNG seeded by ``seed``)."""
    config = validate_config(raw, "test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(config, outputs, None)


def assert_same_parameters(model: nn.Module, reference: nn.Module) -> None:
    expected = dict(reference.named_parameters())
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, expected[name]), name


def test_rules_draw_what_initialize_weights_draws_with_torch_nn_init() -> None:
    """The if/elif chain of torchvision's initialize_weights, a path glob first, with torch's own
    init functions on the same generator in module order: every parameter bit for bit."""
    model = drawn(cnn_config(TORCHVISION_RULES))
    reference = constructed(cnn_config(TORCHVISION_RULES))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for path, module in reference.named_modules():
            if fnmatch.fnmatchcase(path, "head.*"):
                nn.init.normal_(module.weight, 0.0, 0.5, generator=generator)
                nn.init.constant_(module.bias, 0.3)
            elif isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01, generator=generator)
                nn.init.zeros_(module.bias)
    assert_same_parameters(model, reference)
    assert float(model.head.linear.bias.detach()[0]) == pytest.approx(0.3)  # the first rule won over Linear's


def test_unmatched_modules_keep_init_scheme_and_bias_or_the_constructor() -> None:
    rules = [{"match": "BatchNorm2d", "scheme": "normal:mean=1,std=0.1"}]
    raw = cnn_config(rules, scheme="kaiming_normal")
    raw["init"]["bias"] = "constant:value=0.2"
    model, reference = drawn(raw), constructed(raw)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.1, generator=generator)
                nn.init.constant_(module.bias, 0.2)  # the rule gives no bias: init.bias
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                nn.init.constant_(module.bias, 0.2)
    assert_same_parameters(model, reference)
    # With the constructor as default, only the matched norms change.
    kept = drawn(cnn_config(rules))
    reference = constructed(cnn_config(rules))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.1, generator=generator)
                nn.init.zeros_(module.bias)
    assert_same_parameters(kept, reference)


def test_a_scheme_on_a_norms_1d_weight_uses_fans_n_n() -> None:
    """kaiming_normal with gain 1 on a BatchNorm2d of n features: N(0, 1/n), as a fan of n gives."""
    raw = cnn_config([{"match": "blocks.1.1", "scheme": "kaiming_normal:gain=1", "bias": "normal:std=2"}], width=32)
    norm = drawn(raw, outputs=None).blocks[1][1]
    generator = torch.Generator().manual_seed(3)
    expected_weight = torch.empty(32).normal_(0.0, 1 / math.sqrt(32), generator=generator)
    expected_bias = torch.empty(32).normal_(0.0, 2.0, generator=generator)
    assert torch.equal(norm.weight.detach(), expected_weight) and torch.equal(norm.bias.detach(), expected_bias)


def test_rules_apply_to_every_run_and_each_runs_scheme_fills_the_rest(cli, tmp_path: Path) -> None:
    raw = cnn_config([{"match": "blocks.0.*", "scheme": "normal:std=0.5"}], bias=False, norm="none")
    raw["init"] = {"schemes": ["zeros", "he"], "rules": raw["init"]["rules"]}
    raw["model"].pop("norm")
    config = write_config(tmp_path / "c.yaml", json.dumps(raw))
    assert cli("run", config, "--out", tmp_path / "out").exit_code == 0
    rows = {(row["scheme"], row["layer"]): float(row["weight_std"]) for row in read_csv(tmp_path / "out" / "layer_stats.csv")}
    assert rows["zeros", "1"] == pytest.approx(0.5, rel=0.2) and rows["he", "1"] == pytest.approx(0.5, rel=0.2)
    assert rows["zeros", "2"] == 0.0 and rows["he", "2"] == pytest.approx(math.sqrt(2 / 54), rel=0.2)


def test_an_mlp_with_rules_runs_on_the_module_backend_with_the_fast_engines_numbers(cli, tmp_path: Path) -> None:
    """Rules that restate init.scheme move the plain MLP to the module backend, where it is the same network."""
    base = {"device": "cpu", "model": {"depth": 4, "width": 16, "activation": "tanh"}, "init": {"scheme": "xavier_normal", "gain": "auto"}, "input": {"batch": 8}}
    ruled = {**base, "init": {**base["init"], "rules": [{"match": "Linear", "scheme": "xavier_normal:gain=auto"}]}}
    assert select(validate_config(base, "t")).backend == STACKED and select(validate_config(ruled, "t")).backend == MODULE
    for name, raw in (("fast", base), ("ruled", ruled)):
        assert cli("run", write_config(tmp_path / f"{name}.yaml", json.dumps(raw)), "--out", tmp_path / name).exit_code == 0
    fast, ruled_rows = read_csv(tmp_path / "fast" / "layer_stats.csv"), read_csv(tmp_path / "ruled" / "layer_stats.csv")
    assert [float(row["std"]) for row in ruled_rows] == pytest.approx([float(row["std"]) for row in fast], rel=1e-5)


def test_summary_records_which_rule_set_each_module() -> None:
    config = validate_config(cnn_config(TORCHVISION_RULES), "test")
    record = init_rules_summary(config, constructed(cnn_config(TORCHVISION_RULES)))
    assert record is not None
    assert [rule["modules"] for rule in record["rules"]] == [
        ["head.linear"], ["blocks.0.0", "blocks.1.0", "blocks.2.0"], ["blocks.0.1", "blocks.1.1", "blocks.2.1"], [],
    ]
    assert record["modules"]["head.linear"] == {"type": "Linear", "rule": 0, "match": "head.*", "scheme": "normal:std=0.5", "bias": "constant:value=0.3"}
    assert record["modules"]["blocks.1.0"]["scheme"] == f"kaiming_normal:gain={math.sqrt(2)},mode=fan_out,nonlinearity=relu"
    assert record["default"] == {"constructor": "constructor"}


def test_a_run_of_its_config_yaml_reproduces_a_ruled_training_run(cli, tmp_path: Path) -> None:
    raw = cnn_config(TORCHVISION_RULES[1:], scheme="he", width=4, depth=2, bias=False)
    raw.update(experiment="train", seeds=2, train={"dataset": "digits", "steps": 3, "eval_every": 3, "lr": 0.05})
    raw.pop("input")
    config = write_config(tmp_path / "c.yaml", json.dumps(raw))
    assert cli("run", config, "--out", tmp_path / "a").exit_code == 0
    assert cli("run", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b").exit_code == 0
    for name in ("train_metrics.csv", "summary.json", "config.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    record = json.loads((tmp_path / "a" / "summary.json").read_text())["init_rules"]
    assert record["modules"]["head.linear"]["rule"] == 2  # the Linear rule: the head exists when training


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"match": "Conv2d", "scheme": "he"}, {"match": "Linear", "scheme": "kaimin_normal"}], "init.rules[1] (match 'Linear'): Unknown scheme 'kaimin_normal'. Did you mean 'kaiming_normal'?"),
        ([{"match": "Conv2D", "scheme": "he"}], "init.rules[0] (match 'Conv2D') matches no module of the model. Did you mean 'Conv2d'?"),
        ([{"match": "block.*", "scheme": "he"}], "init.rules[0] (match 'block.*') matches no module of the model."),
        ([{"match": "*", "scheme": "orthogonal"}], "init.rules[0] (match '*'): scheme 'orthogonal' needs a 2-D weight, and blocks.0.1 (BatchNorm2d) has a 1-D weight."),
        ([{"match": "Conv2d", "scheme": "he", "bias": "orthogonal"}], "init.rules[0] (match 'Conv2d'): bias scheme 'orthogonal' needs a 2-D weight"),
        ([{"matc": "Conv2d", "scheme": "he"}], "init.rules.0.matc: unknown key. Did you mean 'match'?"),
    ],
)
def test_a_bad_rule_exits_2_with_one_clear_line(cli, tmp_path: Path, rules: list[dict], message: str) -> None:
    config = write_config(tmp_path / "bad.yaml", json.dumps(cnn_config(rules)))
    result = cli("run", config, "--out", tmp_path / "out", "-q")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_rules_survive_a_scheme_override_and_split_sweep_stacks() -> None:
    raw = cnn_config(TORCHVISION_RULES)
    overridden = validate_config(apply_overrides(raw, ["init.scheme=he"]), "test")
    assert overridden.init.rules == validate_config(raw, "test").init.rules
    other = cnn_config(TORCHVISION_RULES[:3])
    assert stack_key(validate_config(raw, "t")) != stack_key(validate_config(other, "t"))
    assert stack_key(validate_config(raw, "t")) == stack_key(overridden)


def test_rule_schemes_are_checked_like_init_scheme() -> None:
    with pytest.raises(InitbenchError, match=r"init.rules\[0\] \(match 'Conv2d'\) scheme 'normal:std=1e300': its weights overflow float32"):
        validate_config(cnn_config([{"match": "Conv2d", "scheme": "normal:std=1e300"}]), "test")


def test_rules_that_set_every_weight_layer_say_the_scheme_is_unused(cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", "model: {arch: cnn, depth: 2, width: 4}\ninput: {batch: 4, channels: 1, image_size: 4}\n")
    everything = cli("run", config, "init.scheme=zero", "init.rules=[{match: Conv2d, scheme: he}]", "--out", tmp_path / "all")
    assert everything.exit_code == 0 and "init.scheme draws no weight here" in everything.output
    assert json.loads((tmp_path / "all" / "summary.json").read_text())["init_rules"]["default_unused"] is True
    some = cli("run", config, "init.scheme=zero", "init.rules=[{match: blocks.0.0, scheme: he}]", "--out", tmp_path / "some")
    assert some.exit_code == 0 and "draws no weight" not in some.output
    assert json.loads((tmp_path / "some" / "summary.json").read_text())["init_rules"]["default_unused"] is False
