"""LSUV (initbench.engines.lsuv_fit): unit variance within tol, checked with plain torch hooks on each run's model
alone; stacked runs against each run alone; iteration counts against a hand recomputation from the
orthonormal start; the PyPI ``lsuv`` package (0.3.0) as a peer on the same model and batch."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from initbench.config.loading import validate_config
from initbench.config.run import Config
from initbench.core.interfaces import SilentProgress
from initbench.core.registry import build_from_spec
from initbench.engines.base import Run
from initbench.engines.choice import MODULE, STACKED, select
from initbench.engines.lsuv_fit import fit_lsuv_runs
from initbench.engines.modules import StackedModules, build_stack, initialize, module_inputs
from initbench.experiments.base import RunContext, build_runs
from initbench.experiments.train import TrainExperiment
from initbench.nets.architectures import weight_layers
from initbench.render.lsuv_fits import fit_entries, fit_warnings
from initbench.runs.sweeps.plan import stack_key
from initbench.schemes.base import SCHEMES
from initbench.schemes.lsuv import LSUV
from tests.conftest import read_csv, write_config

CPU = torch.device("cpu")

#: The cases of the unit-variance and stacking tests: a deep tanh mlp (vmapped), a relu cnn with
#: BatchNorm (train mode: one run at a time), a probed module with biases.
CASES = {
    "mlp": {"model": {"arch": "mlp", "depth": 8, "width": 32, "activation": "tanh"}, "input": {"batch": 64}},
    "cnn_batchnorm": {"model": {"arch": "cnn", "depth": 3, "width": 6, "activation": "relu", "norm": "batchnorm"}, "input": {"batch": 8, "image_size": 6}},
    "module": {"model": {"arch": "module", "factory": "tests.probe_models:tanh_relu_mlp"}, "input": {"shape": [64, 16]}},
}


def make_config(case: str, schemes: list[str], seed: int = 0, seeds: int = 3, dtype: str = "float32", bias: str | None = None) -> Config:
    """A config of ``case``; with ``bias``, the built-in nets get biases drawn from it (a module's Linear layers have their own)."""
    raw = {**copy.deepcopy(CASES[case]), "seed": seed, "seeds": seeds, "dtype": dtype, "device": "cpu", "init": {"schemes": schemes}}
    if bias is not None:
        raw["init"]["bias"] = bias
        if raw["model"]["arch"] != "module":
            raw["model"]["bias"] = True
    return validate_config(raw, "(test)")


def fitted(config: Config) -> tuple[StackedModules, torch.Tensor, dict]:
    runs = build_runs(config)
    stack = build_stack(config, runs, CPU)
    x = module_inputs(config, runs, CPU)
    return stack, x, fit_lsuv_runs(stack, x)


def run_alone(stack: StackedModules, index: int) -> nn.Module:
    """Run ``index``'s model as a plain nn.Module holding its fitted parameters."""
    return stack.run_model(index)


def start_model(config: Config, index: int) -> nn.Module:
    """Run ``index``'s model as drawn, before any fit (the stack drops its per-run models: built again)."""
    return build_stack(config, build_runs(config), CPU).run_model(index)


def output_variances(model: nn.Module, x: torch.Tensor, correction: int = 0) -> dict[str, float]:
    """Var(output) over every entry (population variance; ``correction=1``: unbiased) of each weight layer, by plain forward hooks."""
    found: dict[str, float] = {}

    def record(name: str, output: torch.Tensor) -> None:
        found.setdefault(name, float(output.double().var(correction=correction)))

    handles = [module.register_forward_hook(lambda m, i, o, name=name: record(name, o)) for name, module in weight_layers(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_every_weight_layer_reaches_unit_variance_within_tol(case: str) -> None:
    config = make_config(case, ["lsuv:tol=0.05"], seeds=2)
    stack, x, fits = fitted(config)
    assert (stack.one_at_a_time is not None) == (case == "cnn_batchnorm")
    for index, run in enumerate(stack.runs):
        variances = output_variances(run_alone(stack, index), x[index])
        assert [layer.module for layer in fits[("lsuv:tol=0.05", run.seed)]] == list(variances)
        for layer in fits[("lsuv:tol=0.05", run.seed)]:
            assert abs(variances[layer.module] - 1) < 0.05, (run.seed, layer)
            assert layer.converged and layer.variance == pytest.approx(variances[layer.module], rel=1e-5)
        # Not a scheme that happens to give unit variance: the orthonormal start does not.
        start = output_variances(start_model(config, index), x[index])
        assert max(abs(value - 1) for value in start.values()) > 0.05


@pytest.mark.parametrize("case", ["mlp", "cnn_batchnorm"])
def test_stacked_seeds_equal_each_seed_alone_and_other_schemes_are_untouched(case: str) -> None:
    bias = "normal:std=0.5"  # biases make some layers take several rescales to get within a tol of 0.01
    config = make_config(case, ["he", "lsuv:tol=0.01"], seeds=3, dtype="float64", bias=bias)
    stack, _, fits = fitted(config)
    untouched, _, _ = fitted(make_config(case, ["he"], seeds=3, dtype="float64", bias=bias))
    for key, value in untouched.params.items():
        assert torch.equal(stack.params[key][:3], value)  # he's runs: not rescaled, not even touched
    assert max(layer.iterations for layers in fits.values() for layer in layers) >= 2
    for offset, seed in enumerate(config.seed_list()):
        alone, _, alone_fits = fitted(make_config(case, ["lsuv:tol=0.01"], seed=seed, seeds=1, dtype="float64", bias=bias))
        for key, value in alone.params.items():
            torch.testing.assert_close(stack.params[key][3 + offset], value[0], rtol=1e-10, atol=1e-12)
        for together, by_itself in zip(fits[("lsuv:tol=0.01", seed)], alone_fits[("lsuv:tol=0.01", seed)], strict=True):
            assert (together.module, together.iterations, together.converged) == (by_itself.module, by_itself.iterations, by_itself.converged)
            assert together.variance == pytest.approx(by_itself.variance, rel=1e-12)


def test_iterations_are_the_rescales_the_orthonormal_start_needed() -> None:
    """Without biases, a layer is linear in its weight: it takes one rescale, W⁰/√Var(W⁰x), where its
    start was outside tol, and none where it was inside; recomputed here from the start weights and
    each layer's input in the fitted model."""
    tol = 0.02
    config = make_config("module", [f"lsuv:tol={tol}"], seeds=2, dtype="float64")
    stack, x, fits = fitted(config)
    for index, run in enumerate(stack.runs):
        start, model = start_model(config, index), run_alone(stack, index)
        inputs: dict[str, torch.Tensor] = {}
        handles = [module.register_forward_pre_hook(lambda m, i, name=name, seen=inputs: seen.update({name: i[0]})) for name, module in weight_layers(model)]
        with torch.no_grad():
            model(x[index])
        for handle in handles:
            handle.remove()
        rescaled = 0
        for layer, (name, module) in zip(fits[(f"lsuv:tol={tol}", run.seed)], weight_layers(start), strict=True):
            with torch.no_grad():
                variance = float(torch.nn.functional.linear(inputs[name], module.weight, module.bias).var(correction=0))
            expected = 1 if abs(variance - 1) >= tol else 0
            assert layer.iterations == expected
            torch.testing.assert_close(dict(model.named_modules())[name].weight, module.weight / math.sqrt(variance) if expected else module.weight)
            rescaled += expected
        assert rescaled >= 1


def test_a_layer_that_cannot_reach_unit_variance_is_recorded_after_max_iter(cli, tmp_path: Path) -> None:
    # Biases of std 3 that differ between units: Var(Wx + b) ≥ Var(b) ≈ 9 whatever W's scale.
    config = write_config(
        tmp_path / "c.yaml",
        "seeds: 2\nmodel: {depth: 3, width: 16, activation: tanh, bias: true}\ninit: {scheme: 'lsuv:max_iter=4', bias: 'normal:std=3'}\ninput: {batch: 32}\n",
    )
    result = cli("run", config, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    entry = summary["schemes"]["lsuv:max_iter=4"]["lsuv"]
    assert entry["max_iter"] == 4 and [item["seed"] for item in entry["per_seed"]] == [0, 1]
    assert len(entry["not_converged"]) == 6  # every layer of both seeds
    assert all(item["iterations"] == 4 and item["variance"] > 1.1 for item in entry["not_converged"])
    assert "Not converged" in (tmp_path / "r" / "summary.md").read_text()
    assert "LSUV 'lsuv:max_iter=4': 6 layer fits did not reach |Var(output) − 1| < 0.1 in 4 rescales" in result.output


def test_hooks_are_removed_when_the_model_raises() -> None:
    class Raises(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.first(x)
            raise RuntimeError("the model's own failure")

    runs = [Run("lsuv", seed, LSUV(), None) for seed in (0, 1)]
    models = [Raises() for _ in runs]
    for model, run in zip(models, runs, strict=True):
        initialize(model, run, SCHEMES.get("zeros")(), torch.Generator().manual_seed(run.seed))
    stack = StackedModules(models, runs, CPU)
    with pytest.raises(RuntimeError, match="the model's own failure"):
        fit_lsuv_runs(stack, torch.randn(2, 8, 4))
    assert all(not module._forward_hooks for module in stack.base.modules())


def test_a_weight_layer_never_called_keeps_its_start_and_is_reported_as_such() -> None:
    class Spare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.spare = nn.Linear(6, 6, bias=False), nn.Linear(6, 6, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    runs = [Run("lsuv", 0, LSUV(), None)]
    model = Spare()
    initialize(model, runs[0], SCHEMES.get("zeros")(), torch.Generator().manual_seed(0))
    start = model.spare.weight.detach().clone()
    stack = StackedModules([model], runs, CPU)
    fits = fit_lsuv_runs(stack, 3 * torch.randn(1, 32, 6))
    used, spare = fits[("lsuv", 0)]
    assert used.called and used.converged and used.iterations == 1
    assert not spare.called and spare.iterations == 0 and math.isnan(spare.variance)
    assert torch.equal(stack.params["spare.weight"][0], start)
    entries = fit_entries(fits, runs, "a batch")
    assert entries["lsuv"]["not_called"] == ["spare"] and entries["lsuv"]["not_converged"] == [] and not fit_warnings({"lsuv": {"lsuv": entries["lsuv"]}})


def peer_lsuv(model: nn.Module, x: torch.Tensor, **options: object) -> nn.Module:
    """The PyPI package's LSUVinit on a copy of ``model`` (it prints nothing with verbose off)."""
    from lsuv import lsuv_with_singlebatch

    return lsuv_with_singlebatch(copy.deepcopy(model), x, verbose=False, **options)


@pytest.mark.parametrize("factory, shape", [("tanh_relu_mlp", [128, 16]), ("small_cnn", [16, 3, 8, 8])])
def test_the_pypi_lsuv_package_and_initbench_both_reach_unit_variance_on_the_same_model(factory: str, shape: list[int]) -> None:
    pytest.importorskip("lsuv")
    config = validate_config({"device": "cpu", "model": {"arch": "module", "factory": f"tests.probe_models:{factory}"}, "input": {"shape": shape}, "init": {"scheme": "lsuv"}}, "(test)")
    stack, x, fits = fitted(config)
    torch.manual_seed(0)  # the package draws its orthonormal start from torch's global generator
    peer = peer_lsuv(start_model(config, 0), x[0], std_tol=0.1, max_attempts=10)
    ours = output_variances(run_alone(stack, 0), x[0])
    theirs = output_variances(peer, x[0], correction=1)
    assert list(ours) == list(theirs) == [layer.module for layer in fits[("lsuv", 0)]]
    for name in ours:
        assert abs(ours[name] - 1) < 0.1  # initbench's criterion: |Var − 1| < tol
        assert abs(math.sqrt(theirs[name]) - 1) <= 0.1  # the package's: |std − 1| ≤ tol, the unbiased std


def test_from_the_same_start_initbench_and_the_pypi_package_rescale_to_the_same_weights() -> None:
    """Both divide each layer's weight by its output's spread on the batch; they differ only in the
    spread's estimator (initbench √Var with ddof 0, the package the unbiased std + 1e-8), a factor
    √(n/(n−1)) for n = batch × features entries: 1 + 2e-4 here."""
    pytest.importorskip("lsuv")
    config = validate_config(
        {"device": "cpu", "model": {"arch": "module", "factory": "tests.probe_models:tanh_relu_mlp"}, "input": {"shape": [128, 16]}, "init": {"scheme": "lsuv:tol=0.0001"}},
        "(test)",
    )
    stack, x, fits = fitted(config)
    assert all(layer.iterations == 1 for layer in fits[("lsuv:tol=0.0001", 0)])
    peer = peer_lsuv(start_model(config, 0), x[0], std_tol=1e-4, max_attempts=10, do_orthonorm=False)
    ours = run_alone(stack, 0)
    for (name, module), (_, theirs) in zip(weight_layers(ours), weight_layers(peer), strict=True):
        start = dict(start_model(config, 0).named_modules())[name].weight
        assert not torch.allclose(theirs.weight, start, rtol=1e-3)  # the package did rescale it
        torch.testing.assert_close(module.weight, theirs.weight, rtol=1e-3, atol=0)


def test_probe_with_lsuv_reports_iterations_and_no_theory(cli, tmp_path: Path) -> None:
    result = cli("probe", "tests.probe_models:small_mlp", "--input-shape", "64,5", "--scheme", "lsuv", "--scheme", "he", "--seeds", "2", "--out", tmp_path / "p", "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    entry = summary["schemes"]["lsuv"]
    assert entry["theory"] is None and "no mean-field prediction" in entry["theory_note"] and entry["weight_variance"] is None
    fits = entry["lsuv"]
    assert fits["modules"] == ["0", "2"] and fits["not_called"] == [] and [item["seed"] for item in fits["per_seed"]] == [0, 1]
    assert all(isinstance(layer["iterations"], int) and layer["converged"] for item in fits["per_seed"] for layer in item["layers"])
    assert "lsuv" not in summary["schemes"]["he"]
    from initbench import api

    assert api.load(tmp_path / "p").schemes["lsuv"]["lsuv"]["per_seed"][1]["layers"][0]["iterations"] == fits["per_seed"][1]["layers"][0]["iterations"]
    # The experiment's own statistics of the Linear modules' outputs, on the batch LSUV fitted on.
    rows = read_csv(tmp_path / "p" / "layer_stats.csv")
    linear = [row for row in rows if row["scheme"] == "lsuv" and row["module_type"] == "Linear"]
    assert len(linear) == 4 and all(abs(float(row["std"]) ** 2 - 1) < 0.1 for row in linear)
    assert "| lsuv |" in (tmp_path / "p" / "summary.md").read_text()


def test_train_fits_on_the_first_training_batch_then_trains() -> None:
    config = validate_config(
        {"experiment": "train", "device": "cpu", "seeds": 2, "model": {"hidden": [16, 16], "activation": "tanh"}, "init": {"schemes": ["lsuv", "he"]},
         "train": {"dataset": "circles", "steps": 3, "batch_size": 50, "eval_every": 3, "lr": 0.05}},
        "(test)",
    )
    assert select(config).backend == MODULE  # an mlp with a data-dependent scheme runs on the module backend
    context = RunContext(config=config, device=CPU, dtype=torch.float32, progress=SilentProgress())
    experiment = TrainExperiment()
    record = experiment.measure(context, build_runs(config))
    assert set(record.fits) == {("lsuv", 0), ("lsuv", 1)}
    assert [layer.module for layer in record.fits[("lsuv", 0)]] == ["blocks.0.0", "blocks.1.0", "head.linear"]
    assert all(layer.converged for layers in record.fits.values() for layer in layers)
    result = experiment.analyse(config, record)
    assert result.summary["schemes"]["lsuv"]["lsuv"]["batch"] == "the training set's first 50 examples"
    assert "lsuv" not in result.summary["schemes"]["he"]


@pytest.mark.parametrize("shape", [(6, 10), (8, 3, 3, 3)])
def test_the_start_is_torchs_orthogonal_from_the_runs_generator(shape: tuple[int, ...]) -> None:
    from initbench.nets.architectures import ParamContext, fans

    tensor, expected = torch.empty(shape), torch.empty(shape)
    LSUV().sample_(tensor, ParamContext("layer", "Conv2d", "weight", shape, *fans(shape), 1, 1), torch.Generator().manual_seed(3))
    torch.nn.init.orthogonal_(expected, generator=torch.Generator().manual_seed(3))
    assert torch.equal(tensor, expected)
    rows = tensor.flatten(1)
    torch.testing.assert_close(rows @ rows.T, torch.eye(shape[0]))  # fewer rows than columns here: orthonormal rows


def test_options_are_checked_and_lsuv_cannot_fill_a_bias() -> None:
    from initbench.core.errors import InitbenchError

    with pytest.raises(InitbenchError, match="tol"):
        build_from_spec(SCHEMES, "lsuv:tol=0")
    with pytest.raises(InitbenchError, match="max_iter"):
        build_from_spec(SCHEMES, "lsuv:max_iter=0")
    with pytest.raises(InitbenchError, match="no rule for a bias"):
        validate_config({"init": {"scheme": "he", "bias": "lsuv"}}, "(test)")


def test_a_sweep_never_stacks_lsuv_with_fast_engine_runs() -> None:
    he = validate_config({"model": {"depth": 3, "width": 8}, "init": {"scheme": "he"}}, "(test)")
    lsuv = validate_config({"model": {"depth": 3, "width": 8}, "init": {"scheme": "lsuv"}}, "(test)")
    orthogonal = validate_config({"model": {"depth": 3, "width": 8}, "init": {"scheme": "orthogonal"}}, "(test)")
    assert select(he).backend == STACKED and select(lsuv).backend == MODULE
    assert stack_key(he) == stack_key(orthogonal) != stack_key(lsuv)


def test_lsuv_leaves_the_modules_a_rule_set_as_the_rule_drew_them(cli, tmp_path: Path) -> None:
    """init.scheme lsuv fits the modules no rule matches; a rule's module keeps the rule's draw."""
    config = write_config(tmp_path / "c.yaml", "model: {arch: cnn, depth: 3, width: 8}\ninput: {batch: 16, channels: 1, image_size: 6}\n")
    rule = "init.rules=[{match: blocks.1.0, scheme: 'normal:std=0.01'}]"
    assert cli("run", config, "init.scheme=lsuv", rule, "--out", tmp_path / "lsuv", "--quiet").exit_code == 0
    assert cli("run", config, "init.scheme=orthogonal", rule, "--out", tmp_path / "orthogonal", "--quiet").exit_code == 0
    fitted = {row["layer"]: row for row in read_csv(tmp_path / "lsuv" / "layer_stats.csv")}
    drawn = {row["layer"]: row for row in read_csv(tmp_path / "orthogonal" / "layer_stats.csv")}
    assert fitted["2"]["weight_std"] == drawn["2"]["weight_std"]  # the rule's N(0, 0.01²), untouched
    assert float(fitted["1"]["pre_std"]) == pytest.approx(1.0, abs=0.06) and float(fitted["3"]["pre_std"]) == pytest.approx(1.0, abs=0.06)
    layers = json.loads((tmp_path / "lsuv" / "summary.json").read_text())["schemes"]["lsuv"]["lsuv"]
    assert "blocks.1.0" not in json.dumps(layers)
