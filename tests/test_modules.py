"""The module backend, the built-in architectures and ``initbench probe``.

Every number is checked against an independent computation: torch's own fan function, a
hand-written forward pass of the same model with the same draws, the fast engine on the same seed,
each model run alone, closed-form mean-field recursions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from initbench.config.loading import validate_config
from initbench.config.run import Config
from initbench.core.interfaces import SilentProgress
from initbench.core.registry import build_from_spec
from initbench.core.runtime import derive_seed
from initbench.engines.base import Run
from initbench.engines.choice import MODULE, STACKED, EngineChoice
from initbench.engines.modules import (
    Observer,
    RowStatistics,
    StackedModules,
    build_stack,
    initialize,
    module_inputs,
    observe,
    observe_gradients,
    observed_modules,
)
from initbench.experiments.base import RunContext, build_runs
from initbench.experiments.propagation import ForwardExperiment, GradientsExperiment, Measurement
from initbench.nets.activations import ACTIVATIONS
from initbench.nets.architectures import ParamContext, build_builtin, fans, parameter_contexts
from initbench.schemes.base import SCHEMES
from tests.conftest import read_csv

CPU = torch.device("cpu")


def make_config(**sections: object) -> Config:
    raw: dict = {"seeds": 2, "dtype": "float64", "device": "cpu", "init": {"schemes": ["he", "xavier_normal"]}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    return validate_config(raw, "(test)")


def context_for(config: Config) -> RunContext:
    return RunContext(config=config, device=CPU, dtype=torch.float64, progress=SilentProgress())


#: Either backend, forced whatever engines.select would pick (the seam the tests use).
ON_STACKED = EngineChoice(STACKED, "forced by the test")
ON_MODULES = EngineChoice(MODULE, "forced by the test")


def measure_modules(config: Config, backward: bool = False) -> Measurement:
    """``config``'s runs measured on the module backend."""
    experiment = GradientsExperiment() if backward else ForwardExperiment()
    return experiment.measure(context_for(config), build_runs(config), ON_MODULES)


TANH_ROWS = RowStatistics(build_from_spec(ACTIVATIONS, "tanh"))


# --- fans and contexts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [nn.Linear(7, 5), nn.Conv1d(3, 4, 5), nn.Conv2d(3, 8, (3, 2)), nn.Conv3d(2, 6, 3), nn.ConvTranspose2d(4, 3, 3), nn.Embedding(11, 6)],
    ids=lambda m: type(m).__name__,
)
def test_fans_equal_torchs(module: nn.Module) -> None:
    contexts = [context for _, parameter, context in parameter_contexts(module) if context is not None and context.role == "weight"]
    expected = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
    assert (contexts[0].fan_in, contexts[0].fan_out) == expected == fans(tuple(module.weight.shape))


def test_contexts_name_module_role_layer_and_residual_branch() -> None:
    relu = build_from_spec(ACTIVATIONS, "relu")
    model = build_builtin("resmlp", relu, [6] * 3, 4, True, "none", outputs=2)
    contexts = [context for _, _, context in parameter_contexts(model) if context is not None]
    weights = [context for context in contexts if context.role == "weight"]
    # stem, 3 blocks × 2 layers, head: 8 weight layers in model order
    assert [c.module_path for c in weights] == ["stem.0", *(f"blocks.{b}.branch.{i}" for b in range(3) for i in (0, 2)), "head.linear"]
    assert [c.layer for c in weights] == list(range(1, 9)) and {c.depth for c in weights} == {8}
    assert [(c.branch, c.position, c.branch_length, c.branches) for c in weights[1:3]] == [(1, 1, 2, 3), (1, 2, 2, 3)]
    assert weights[0].branch is None and weights[-1].branch is None
    bias = next(c for c in contexts if c.role == "bias" and c.module_path == "blocks.0.branch.0")
    assert (bias.fan_in, bias.fan_out, bias.shape) == (6, 6, (6,))
    assert (weights[0].fan_in, weights[0].fan_out, weights[0].module_type) == (4, 6, "Linear")


def test_a_scheme_is_told_each_parameters_context() -> None:
    seen: list[ParamContext] = []
    he = build_from_spec(SCHEMES, "he").resolve(build_from_spec(ACTIVATIONS, "relu"))

    class Recording(type(he)):  # type: ignore[misc]
        def sample_(self, tensor, context, generator):
            seen.append(context)
            super().sample_(tensor, context, generator)

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    initialize(model, Run("r", 0, Recording(**he.model_dump()), None), build_from_spec(SCHEMES, "zeros"), torch.Generator().manual_seed(0))
    assert [(c.module_path, c.role, c.fan_in) for c in seen] == [("0", "weight", 27), ("3", "weight", 16)]
    assert torch.equal(model[1].weight, torch.ones(4)) and torch.equal(model[1].bias, torch.zeros(4))
    assert torch.equal(model[0].bias, torch.zeros(4)) and torch.equal(model[3].bias, torch.zeros(2))


# --- one draw order: the module backend and the fast engine agree -----------------------------------


def test_module_backend_mlp_equals_the_fast_engine() -> None:
    """The same config through both backends: same draws, same inputs, same statistics and gradients."""
    config = make_config(experiment="gradients", model={"depth": 4, "width": 12, "activation": "tanh", "bias": True}, init={"bias": "normal:std=0.1"}, input={"batch": 9})
    fast = GradientsExperiment().measure(context_for(config), build_runs(config), ON_STACKED)
    slow = measure_modules(config, backward=True)
    for column in ("mean", "std", "pre_std", "weight_mean", "weight_std", "grad_std", "weight_grad_std"):
        np.testing.assert_allclose(slow.stats[column], fast.stats[column], rtol=1e-10, err_msg=column)
    assert [p.fan_in for p in slow.points] == [p.fan_in for p in fast.points] == [12] * 4


# --- vmap equals one at a time equals each model alone ----------------------------------------------


def hand_forward(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each Linear/Tanh output of a Sequential, computed by hand from its weights."""
    outputs = []
    for layer in model:
        x = x @ layer.weight.T + layer.bias if isinstance(layer, nn.Linear) else torch.tanh(x)
        outputs.append(x)
    return outputs


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def test_vmap_and_one_at_a_time_equal_each_model_alone() -> None:
    runs = [Run("he", seed, build_from_spec(SCHEMES, "he").resolve(build_from_spec(ACTIVATIONS, "tanh")), None) for seed in (3, 4, 5)]
    bias = build_from_spec(SCHEMES, "normal:std=0.5")
    models = []
    for run in runs:
        model = small_model().double()
        initialize(model, run, bias, torch.Generator().manual_seed(run.seed))
        models.append(model)
    x = torch.randn(3, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = [hand_forward(model, x[index]) for index, model in enumerate(models)]
    together = observe(StackedModules(models, runs, CPU), x, TANH_ROWS)
    alone_stack = StackedModules(models, runs, CPU)
    alone_stack.one_at_a_time = "forced by the test"
    alone = observe(alone_stack, x, TANH_ROWS)
    assert together.labels == alone.labels == ["0", "1", "2"]
    for call in range(3):
        outputs = torch.stack([expected[index][call] for index in range(3)]).flatten(1)
        std, mean = torch.std_mean(outputs, dim=1, correction=0)
        for observed in (together, alone):
            torch.testing.assert_close(observed.stats[call]["std"], std, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(observed.stats[call]["mean"], mean, rtol=1e-12, atol=1e-14)
            assert [int(counts.sum()) for _, counts in observed.histograms[call]] == [outputs.shape[1]] * 3


def test_gradients_equal_autograd_on_each_model_alone() -> None:
    tanh = build_from_spec(ACTIVATIONS, "tanh")
    runs = [Run("x", seed, build_from_spec(SCHEMES, "xavier_normal").resolve(tanh), None) for seed in (0, 1)]
    models = []
    for run in runs:
        model = small_model().double()
        initialize(model, run, build_from_spec(SCHEMES, "normal:std=0.3"), torch.Generator().manual_seed(run.seed))
        models.append(model)
    x = torch.randn(2, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    r = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    stack = StackedModules(models, runs, CPU)
    with torch.no_grad():
        calls = observe(stack, x, TANH_ROWS).calls
        grads, weight_grads = observe_gradients(stack, x, calls, r)
    for index, model in enumerate(models):
        outputs = []
        hidden = x[index]
        for layer in model:
            hidden = layer(hidden)
            hidden.retain_grad()
            outputs.append(hidden)
        ((hidden * r[index]).sum() / math.sqrt(4)).backward()
        for call in range(3):
            torch.testing.assert_close(grads[call][index], outputs[call].grad, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(weight_grads["0.weight"][index], model[0].weight.grad, rtol=1e-10, atol=1e-14)


def test_hooks_are_removed_after_the_model_raises() -> None:
    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.linear(x)
            raise ValueError("broken model")

    model = Failing()
    observer = Observer(observed_modules(model))
    with pytest.raises(ValueError, match="broken model"), observer:
        model(torch.zeros(1, 3))
    assert not model.linear._forward_hooks and not model._forward_hooks
    assert len(observer.calls) == 1  # the hook did run before the failure


def test_batchnorm_in_train_mode_runs_one_at_a_time_and_says_why() -> None:
    config = make_config(model={"depth": 3, "width": 128, "norm": "batchnorm"}, input={"batch": 256})
    measurement = measure_modules(config)
    assert "BatchNorm1d" in measurement.one_at_a_time and "running statistics" in measurement.one_at_a_time
    # BN → ReLU normalizes every layer to relu(N(0, 1)): std √(1/2 − 1/(2π)), whatever the weights.
    np.testing.assert_allclose(measurement.stats["std"], math.sqrt(0.5 - 0.5 / math.pi), rtol=0.05)
    evaluated = make_config(model={"depth": 3, "width": 8, "norm": "batchnorm", "eval": True}, input={"batch": 16})
    assert measure_modules(evaluated).one_at_a_time is None


def test_layernorm_outputs_have_std_one() -> None:
    config = make_config(model={"arch": "module", "factory": "torch.nn:LayerNorm", "kwargs": {"normalized_shape": 32}}, input={"shape": [64, 32]})
    measurement = measure_modules(config)
    assert [p.module_type for p in measurement.points] == ["LayerNorm"]
    np.testing.assert_allclose(measurement.stats["std"], 1.0, rtol=1e-4)


# --- built-in architectures and their theory ----------------------------------------------------------


def test_resmlp_with_zeroed_second_layers_is_the_identity() -> None:
    config = make_config(model={"arch": "resmlp", "depth": 4, "width": 10, "bias": True}, init={"schemes": ["he"], "bias": "normal:std=1"})
    runs = build_runs(config)
    stack = build_stack(config, runs, CPU)
    with torch.no_grad():
        for name, value in stack.params.items():
            if ".branch.2." in name:  # W₂ and b₂ of every block
                value.zero_()
        x = module_inputs(config, runs, CPU)
        observed = observe(stack, x, RowStatistics(config.model.build_activation()))
    std, mean = torch.std_mean(x.flatten(1), dim=1, correction=0)
    for stats in observed.stats:  # every block's output is its input
        torch.testing.assert_close(stats["std"], std, rtol=1e-12, atol=0)
        torch.testing.assert_close(stats["mean"], mean, rtol=1e-12, atol=1e-15)


def test_resmlp_variance_triples_per_block_under_he_as_theory_says() -> None:
    config = make_config(model={"arch": "resmlp", "depth": 6, "width": 512}, init={"schemes": ["he"]}, input={"batch": 256}, seeds=1)
    result = ForwardExperiment().run(context_for(config))
    entry = result.summary["schemes"]["he"]
    theory_std = [3 ** (block / 2) for block in range(1, 7)]
    np.testing.assert_allclose(entry["std_median_by_layer"], theory_std, rtol=0.15)
    rows = result.tables["layer_stats.csv"].rows
    columns = result.tables["layer_stats.csv"].columns
    np.testing.assert_allclose([row[columns.index("theory_std")] for row in rows], theory_std, rtol=1e-12)


def test_cnn_centre_follows_the_mlp_recursion_with_fan_in_channels_times_nine() -> None:
    config = make_config(
        model={"arch": "cnn", "depth": 3, "width": 64, "activation": "tanh"}, init={"schemes": ["xavier_normal:gain=auto"]},
        input={"batch": 256, "image_size": 9}, seeds=1,
    )
    result = ForwardExperiment().run(context_for(config))
    columns = result.tables["layer_stats.csv"].columns
    rows = result.tables["layer_stats.csv"].rows
    assert [row[columns.index("fan_in")] for row in rows] == [27, 576, 576]
    measured = [row[columns.index("centre_std")] for row in rows]
    predicted = [row[columns.index("theory_std")] for row in rows]
    np.testing.assert_allclose(measured, predicted, rtol=0.05)


def test_normalized_nets_and_modules_say_why_there_is_no_theory() -> None:
    config = make_config(model={"depth": 2, "width": 8, "norm": "layernorm"}, input={"batch": 8})
    summary = ForwardExperiment().run(context_for(config)).summary
    assert summary["schemes"]["he"]["theory"] is None and "normalized" in summary["schemes"]["he"]["theory_note"]


# --- training on every architecture ---------------------------------------------------------------------


def test_module_backend_training_equals_the_fast_trainer() -> None:
    from initbench.experiments.train import TrainExperiment

    raw = {"experiment": "train", "model": {"hidden": [6, 5], "bias": True}, "train": {"dataset": "moons", "steps": 12, "lr": 0.2, "eval_every": 4}}
    fast_config = make_config(**raw)
    fast = TrainExperiment().run(context_for(fast_config)).tables["train_metrics.csv"].rows
    experiment = TrainExperiment()
    slow_record = experiment.measure(context_for(fast_config), build_runs(fast_config), ON_MODULES)
    slow = experiment.analyse(fast_config, slow_record).tables["train_metrics.csv"].rows
    assert [row[:3] for row in slow] == [row[:3] for row in fast]
    np.testing.assert_allclose([row[3:] for row in slow], [row[3:] for row in fast], rtol=1e-9)


@pytest.mark.parametrize("arch", ["resmlp", "cnn"])
def test_every_arch_trains_and_a_run_alone_equals_it_stacked(arch: str) -> None:
    from initbench.experiments.train import TrainExperiment

    model = {"arch": arch, "depth": 2, "width": 6, "bias": True, "norm": "batchnorm"}
    raw = {"experiment": "train", "model": model, "train": {"dataset": "digits", "steps": 8, "lr": 0.05, "eval_every": 4, "batch_size": 32}}
    both = TrainExperiment().run(context_for(make_config(**raw))).tables["train_metrics.csv"].rows
    alone = TrainExperiment().run(context_for(make_config(**raw, init={"schemes": ["xavier_normal"]}))).tables["train_metrics.csv"].rows
    stacked_xavier = [row for row in both if row[0] == "xavier_normal"]
    np.testing.assert_allclose([row[3:] for row in alone], [row[3:] for row in stacked_xavier], rtol=1e-9)
    assert stacked_xavier[-1][3] < stacked_xavier[0][3]  # the loss went down


def test_cnn_training_needs_images() -> None:
    from initbench.core.errors import InitbenchError
    from initbench.experiments.train import TrainExperiment

    config = make_config(experiment="train", model={"arch": "cnn", "depth": 1, "width": 4}, train={"dataset": "circles", "steps": 1})
    with pytest.raises(InitbenchError, match="images"):
        TrainExperiment().run(context_for(config))


# --- initbench probe -----------------------------------------------------------------------------------


def test_probe_of_a_small_model_equals_a_hand_written_forward(cli, tmp_path: Path) -> None:
    result = cli("probe", "tests.probe_models:small_mlp", "--input-shape", "16,5", "--seeds", "2", "--out", tmp_path / "p", "--quiet")
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "p" / "layer_stats.csv")
    assert [row["module"] for row in rows[:3]] == ["0", "1", "2"]
    assert [row["module_type"] for row in rows[:3]] == ["Linear", "Tanh", "Linear"]
    from tests.probe_models import small_mlp

    for seed in (0, 1):
        torch.manual_seed(seed)
        model = small_mlp()
        x = torch.empty(16, 5).normal_(generator=torch.Generator().manual_seed(derive_seed(seed, "input")))
        with torch.no_grad():
            outputs = hand_forward(model, x)
        seed_rows = [row for row in rows if int(row["seed"]) == seed]
        for row, output in zip(seed_rows, outputs, strict=True):
            assert float(row["std"]) == pytest.approx(float(output.double().std(correction=0)), rel=1e-6)
            assert float(row["mean"]) == pytest.approx(float(output.double().mean()), rel=1e-5, abs=1e-9)
        assert float(seed_rows[0]["weight_std"]) == pytest.approx(float(model[0].weight.detach().double().std(correction=0)), rel=1e-6)
        assert seed_rows[0]["fan_in"] == "5" and seed_rows[1]["weight_std"] == ""
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["mode"] == "train" and meta["status"] == "complete"


def test_probe_transformer_encoder_layer_and_embedding(cli, tmp_path: Path) -> None:
    result = cli(
        "probe", "torch.nn:TransformerEncoderLayer", "model.kwargs.d_model=32", "model.kwargs.nhead=4", "model.kwargs.batch_first=true",
        "--input-shape", "4,6,32", "--scheme", "xavier_uniform", "--experiment", "gradients", "--out", tmp_path / "t", "--quiet",
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "t" / "layer_stats.csv")
    assert [row["module"] for row in rows] == ["self_attn", "dropout1", "norm1", "linear1", "dropout", "linear2", "dropout2", "norm2"]
    assert all(math.isfinite(float(row["std"])) and math.isfinite(float(row["grad_std"])) for row in rows)
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert "dropout" in summary["backend"]["runs"]  # train mode: dropout is on, so one run at a time
    result = cli(
        "probe", "torch.nn:Embedding", "model.kwargs.num_embeddings=50", "model.kwargs.embedding_dim=8", "--input-shape", "4,5", "--tokens", "50",
        "--scheme", "normal:std=0.02", "--out", tmp_path / "e", "--quiet",
    )
    assert result.exit_code == 0, result.output
    (row,) = read_csv(tmp_path / "e" / "layer_stats.csv")
    assert row["module_type"] == "Embedding" and float(row["std"]) == pytest.approx(0.02, rel=0.3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_package.models:build", "--input-shape", "2,3"], "Cannot import 'no_such_package.models'"),
        (["torch.nn:NoSuchLayer", "--input-shape", "2,3"], "has no attribute 'NoSuchLayer'"),
        (["torch.nn:Linear", "--input-shape", "2,3"], "failed to build"),
        (["math:pi", "--input-shape", "2,3"], "not callable"),
        (["torch.nn", "--input-shape", "2,3"], "Cannot read factory"),
        (["torch.nn:Linear", "model.kwargs.in_features=3", "model.kwargs.out_features=2", "--input-shape", "2,x"], "--input-shape"),
        (["torch.nn:Linear", "model.kwargs.in_features=3", "model.kwargs.out_features=2"], "input.shape"),
    ],
)
def test_probe_errors_are_one_clear_line(cli, args: list[str], message: str) -> None:
    result = cli("probe", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_inputs_from_a_named_dataset_are_its_first_training_examples(cli, tmp_path: Path) -> None:
    from initbench.data.loading import load_dataset

    result = cli("probe", "torch.nn:Flatten", "input.dataset=digits", "--input-shape", "32,1,8,8", "--seeds", "2", "--out", tmp_path / "d", "--quiet")
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "d" / "layer_stats.csv")
    expected = load_dataset("digits", 0).x_train[:32].astype(np.float64)
    assert [float(row["std"]) for row in rows] == pytest.approx([expected.std()] * 2, rel=1e-6)  # every seed sees the same images
    result = cli("probe", "torch.nn:Flatten", "input.dataset=digits", "--input-shape", "32,3,8,8", "--out", tmp_path / "e", "--quiet")
    assert result.exit_code == 2 and "don't fill inputs of shape [32, 3, 8, 8]" in result.output


@pytest.mark.parametrize(
    "sections",
    [
        {"model": {"arch": "cnn", "depth": 2, "width": 4, "norm": "batchnorm"}, "input": {"channels": 1, "image_size": 8}},
        {"model": {"arch": "resmlp", "depth": 3, "eval": True}},
        {"model": {"arch": "module", "factory": "torch.nn:Linear", "kwargs": {"in_features": 3, "out_features": 2}}, "input": {"shape": [4, 3]}},
        {"model": {"arch": "module", "factory": "torch.nn:Embedding", "kwargs": {"num_embeddings": 9, "embedding_dim": 2}}, "input": {"shape": [4], "tokens": 9}},
    ],
    ids=["cnn", "resmlp", "module", "tokens"],
)
def test_the_written_config_reads_back_as_the_same_config(sections: dict) -> None:
    import yaml

    config = make_config(**sections)
    again = validate_config(yaml.safe_load(config.to_yaml()), "(config.yaml)")
    assert again == config


def test_a_probed_models_figure_names_its_modules() -> None:
    from initbench.render.figures import std_by_layer_figure

    names = ["self_attn", "norm1", "linear1"]
    figure = std_by_layer_figure({"he": np.array([[0.5, 1.0, 2.0]])}, "std", "title", row_names=names)
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == names
    assert list(axes.get_xticks()) == [1, 2, 3] and axes.get_xlabel() == "module (execution order)"


def test_identity_on_a_conv_weight_is_a_user_error_naming_the_module(cli, tmp_path: Path) -> None:
    args = ("model.kwargs.in_channels=3", "model.kwargs.out_channels=4", "model.kwargs.kernel_size=3", "--input-shape", "2,3,8,8")
    result = cli("probe", "torch.nn:Conv2d", *args, "--scheme", "identity", "--out", tmp_path / "i")
    assert result.exit_code == 2 and "identity fills 2-D weights only; the model (Conv2d) has a weight of shape [4, 3, 3, 3]" in result.output
