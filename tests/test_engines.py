"""One interface for both engines: ``engines.select`` names the backend and why, summary.json records
it, the module backend's hooks keep no call's tensors and its stack no per-run model, and the
trainer takes its optimizer settings by name."""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn

from initbench.config.loading import validate_config
from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import SilentProgress
from initbench.core.registry import build_from_spec
from initbench.data.loading import load_dataset
from initbench.engines import select
from initbench.engines.base import Run
from initbench.engines.choice import MODULE, STACKED
from initbench.engines.modules import RowStatistics, StackedModules, initialize, observe, observe_gradients, observed_modules
from initbench.engines.training import OptimizerSettings, StackedMLP, StackedTrainer
from initbench.experiments.base import RunContext, build_runs
from initbench.experiments.propagation import ForwardExperiment
from initbench.nets.activations import ACTIVATIONS
from initbench.schemes.base import SCHEMES
from tests.test_memory import PEAK_SCRIPT, REPO

CPU = torch.device("cpu")


def config_of(**raw: object) -> Config:
    return validate_config({"device": "cpu", "seeds": 1, "model": {"depth": 2, "width": 4}, "input": {"batch": 8}, **raw}, "(test)")


# --- engines.select: one backend, one reason ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "backend", "reason"),
    [
        ({"init": {"scheme": "he"}}, STACKED, "an mlp whose schemes all draw per layer: the stacked engine"),
        ({"model": {"arch": "resmlp", "depth": 2, "width": 4}}, MODULE, "a residual mlp, not the plain mlp"),
        ({"model": {"arch": "cnn", "depth": 2, "width": 4}}, MODULE, "a cnn, not the plain mlp"),
        ({"model": {"arch": "module", "factory": "torch.nn:Tanh"}, "input": {"shape": [2, 3]}}, MODULE, "a user's module"),
        ({"model": {"depth": 2, "width": 4, "norm": "layernorm"}}, MODULE, "an mlp with layernorm"),
        ({"init": {"scheme": "he", "rules": [{"match": "Linear", "scheme": "xavier"}]}}, MODULE, "init.rules match module types and paths"),
        ({"input": {"batch": 8, "dataset": "digits"}, "model": {"depth": 2, "width": 64}}, MODULE, "input.dataset feeds real inputs"),
        ({"init": {"schemes": ["he", "constructor"]}}, MODULE, "'constructor' keeps the constructor's init"),
        ({"init": {"scheme": "fixup"}}, MODULE, "'fixup' acts on the whole model"),
        ({"init": {"scheme": "lsuv"}}, MODULE, "lsuv needs data"),
        ({"experiment": "train", "model": {"hidden": [4]}, "train": {"dataset": "moons", "save_models": True}}, MODULE, "save_models names each run's tensors"),
        ({"experiment": "train", "model": {"hidden": [4]}, "train": {"dataset": "moons"}}, STACKED, "an mlp whose schemes all draw per layer"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 12 else None,
)
def test_select_names_the_backend_and_the_first_reason_that_applies(raw: dict, backend: str, reason: str) -> None:
    choice = select(config_of(**raw))
    assert choice.backend == backend and choice.reason.startswith(reason), choice
    assert choice.reason.endswith("the stacked engine" if backend == STACKED else "the module backend")


def context_for(config: Config) -> RunContext:
    return RunContext(config=config, device=CPU, dtype=torch.float32, progress=SilentProgress())


@pytest.mark.parametrize("scheme", ["he", "lsuv"])
def test_summary_json_records_the_engine_of_propagation_and_train_runs(cli, tmp_path: Path, scheme: str) -> None:
    expected = select(config_of(init={"scheme": scheme})).as_json()
    assert expected["backend"] == (STACKED if scheme == "he" else MODULE)
    common = ("--depth", "3", "--width", "8", "--batch", "16", "--quiet")
    assert cli("compare", scheme, *common, "--out", tmp_path / "forward").exit_code == 0
    assert json.loads((tmp_path / "forward" / "summary.json").read_text())["engine"] == expected
    train = ("--experiment", "train", "--dataset", "moons", "--steps", "2", "--quiet")
    assert cli("compare", scheme, *train, "--out", tmp_path / "train").exit_code == 0
    assert json.loads((tmp_path / "train" / "summary.json").read_text())["engine"]["backend"] == expected["backend"]


# --- the module backend keeps no call's tensors ------------------------------------------------------


def tanh_stack(depth: int, runs: int = 2) -> tuple[StackedModules, torch.Tensor]:
    """``runs`` seeds of ``depth`` Linear + tanh layers of width 16, stacked, and their inputs."""
    tanh = build_from_spec(ACTIVATIONS, "tanh")
    built = [Run("he", seed, build_from_spec(SCHEMES, "he").resolve(tanh), None) for seed in range(runs)]
    models = []
    for run in built:
        model = nn.Sequential(*(layer for _ in range(depth) for layer in (nn.Linear(16, 16), nn.Tanh())))
        initialize(model, run, build_from_spec(SCHEMES, "zeros"), torch.Generator().manual_seed(run.seed))
        models.append(model)
    return StackedModules(models, built, CPU), torch.randn(runs, 32, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("together", [True, False], ids=["vmap", "one at a time"])
def test_no_observed_call_outlives_its_hook(together: bool) -> None:
    """A hook of our own beside the Observer's holds a weak reference to every call's output: once
    the pass returns (its result still held), every one is gone, and what the pass kept besides the
    model's output is ``[runs]`` statistics."""
    stack, x = tanh_stack(depth=6)
    if not together:
        stack.one_at_a_time = "forced by the test"
    outputs: list[weakref.ref] = []
    handles = [item.module.register_forward_hook(lambda m, i, o: outputs.append(weakref.ref(o))) for item in observed_modules(stack.base)]
    try:
        with torch.no_grad():
            observed = observe(stack, x, RowStatistics(build_from_spec(ACTIVATIONS, "tanh")))
    finally:
        for handle in handles:
            handle.remove()
    gc.collect()
    assert len(outputs) == 12 * (1 if together else 2)
    assert all(reference() is None for reference in outputs)
    kept = [tensor for stats in observed.stats for tensor in stats.values()]
    assert len(kept) > 0 and all(tensor.shape == (2,) for tensor in kept)
    assert not any(isinstance(value, torch.Tensor) for call in observed.calls for value in vars(call).values())


def test_the_stack_drops_the_models_it_was_given_and_equals_torchs_stack() -> None:
    stack, _ = tanh_stack(depth=2)
    assert not hasattr(stack, "models")
    models = [nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)) for _ in range(3)]
    expected_params, expected_buffers = torch.func.stack_module_state(models)
    references = [weakref.ref(model) for model in models]
    stacked = StackedModules(iter(models), [Run("r", seed, SCHEMES.get("zeros")(), None) for seed in range(3)], CPU)
    del models
    gc.collect()
    assert all(reference() is None for reference in references)
    for name, value in expected_params.items():
        assert torch.equal(stacked.params[name], value) and stacked.params[name].requires_grad and stacked.params[name].is_leaf
    for name, value in expected_buffers.items():
        assert torch.equal(stacked.buffers[name], value)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs to reset the peak")
def test_a_module_backed_runs_peak_memory_does_not_grow_with_its_activations() -> None:
    """Layers of width 64 on a batch of 4096: each layer's activations (1 MiB a run and tensor) are far
    larger than its weights (16 KiB). Kept for every layer, the pass at depth 32 would need 4× that
    at depth 8 (before the hooks reduced them: 36 and 136 MiB); reduced in the hooks, about the same.

    glibc's dynamic mmap threshold would keep a varying number of freed 2 MiB tensors in its heap
    (10 to 40 MiB here from run to run): a fixed threshold measures what is allocated.
    """

    def forward(depth: int) -> dict:
        return {"device": "cpu", "seeds": 2, "model": {"depth": depth, "width": 64}, "input": {"batch": 4096}, "init": {"scheme": "constructor"}}

    cases = [(forward(8), ["model.depth=2"]), (forward(32), ["model.depth=2"])]
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, json.dumps(cases)], capture_output=True, text=True, check=True, timeout=300, cwd=REPO, env=environment
    )
    shallow, deep = json.loads(result.stdout)
    print(f"peak added: depth 8 {shallow / 2**20:.0f} MiB, depth 32 {deep / 2**20:.0f} MiB")
    assert deep < 1.25 * shallow + 4 * 2**20


# --- the trainer's optimizer settings, by name ---------------------------------------------------------


def test_optimizer_settings_are_frozen_and_reach_the_optimizer_by_name() -> None:
    sgd = OptimizerSettings(optimizer="sgd", lr=0.3, momentum=0.7, weight_decay=0.01, batch_size=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sgd.lr = 1.0  # type: ignore[misc]
    config = config_of(experiment="train", model={"hidden": [4]}, train={"dataset": "moons"})
    dataset = load_dataset("moons", 0)
    runs = build_runs(config)
    relu = build_from_spec(ACTIVATIONS, "relu")
    for settings in (sgd, dataclasses.replace(sgd, optimizer="adam")):
        model = StackedMLP(runs, [dataset.input_dim, 4, dataset.output_dim], relu, True, CPU, torch.float32)
        trainer = StackedTrainer(runs, dataset, model, CPU, torch.float32, settings)
        group = trainer.optimizer.param_groups[0]
        assert (group["lr"], group["weight_decay"], trainer.batch_size) == (0.3, 0.01, 16)
        assert group.get("momentum", 0.7) == 0.7 and isinstance(trainer.optimizer, torch.optim.Adam) == (settings.optimizer == "adam")


def test_a_forced_backend_measures_the_same_mlp_and_says_so() -> None:
    config = config_of(init={"scheme": "he"}, model={"depth": 3, "width": 8})
    context = context_for(config)
    forced = dataclasses.replace(select(config), backend=MODULE, reason="forced by the test")
    on_modules = ForwardExperiment().measure(context, build_runs(config), forced)
    on_stacked = ForwardExperiment().measure(context, build_runs(config))
    assert on_modules.engine == forced and on_stacked.engine == select(config)
    torch.testing.assert_close(torch.as_tensor(on_modules.stats["std"]), torch.as_tensor(on_stacked.stats["std"]), rtol=1e-5, atol=0)


class InnerVmap(nn.Module):
    """A model that calls vmap itself: a Linear + tanh applied to each of a sample's tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.func.vmap(lambda token: self.act(self.linear(token)), in_dims=1, out_dims=1)(x)


@pytest.mark.parametrize("together", [True, False], ids=["vmap", "one at a time"])
def test_a_model_that_calls_vmap_itself_gets_each_runs_own_statistics(together: bool) -> None:
    """The hooks see the model's own vmap level wrapped around the runs' one: each run's row
    statistics equal those of that run's model called alone on its inputs, hooked by plain torch."""
    tanh = build_from_spec(ACTIVATIONS, "tanh")
    runs = [Run("he", seed, build_from_spec(SCHEMES, "he").resolve(tanh), None) for seed in range(3)]
    models = []
    for run in runs:
        model = InnerVmap()
        initialize(model, run, build_from_spec(SCHEMES, "zeros"), torch.Generator().manual_seed(run.seed))
        models.append(model)
    alone = [copy.deepcopy(model) for model in models]
    stack = StackedModules(models, runs, CPU)
    if not together:
        stack.one_at_a_time = "forced by the test"
    x = torch.randn(3, 16, 5, 8, generator=torch.Generator().manual_seed(1))  # [runs, batch, tokens, features]
    with torch.no_grad():
        observed = observe(stack, x, RowStatistics(tanh))
    labels = [call.label for call in observed.calls]
    for run, model in enumerate(alone):
        # The reference without any vmap: a Linear acts on the last axis, token by token anyway.
        with torch.no_grad():
            linear = model.linear(x[run])
            outputs = {"linear": linear, "act": torch.tanh(linear)}
        for name, output in outputs.items():
            expected = output.double().std(correction=0).item()  # the population std, as layer_stats.csv
            assert observed.stats[labels.index(name)]["std"][run].item() == pytest.approx(expected, rel=1e-6), (name, run)


def test_gradients_through_a_models_own_vmap_are_refused_with_a_reason() -> None:
    """dL/dh read off a call inside the model's own vmap would be summed over its batch dimension."""
    tanh = build_from_spec(ACTIVATIONS, "tanh")
    runs = [Run("he", seed, build_from_spec(SCHEMES, "he").resolve(tanh), None) for seed in range(2)]
    stack = StackedModules([InnerVmap() for _ in runs], runs, CPU)
    x = torch.randn(2, 4, 5, 8)
    with torch.no_grad():
        observed = observe(stack, x, RowStatistics(tanh))
    assert all(call.inside_model_vmap for call in observed.calls)
    with pytest.raises(InitbenchError, match="calls vmap itself"):
        observe_gradients(stack, x, observed.calls, torch.ones_like(observed.output))


def test_a_module_stack_fixes_glibcs_mmap_threshold() -> None:
    """Building a stack fixes the threshold (once per process), where the C library is glibc."""
    import platform

    from initbench.core.runtime import unmap_large_blocks_on_free

    tanh_stack(depth=1)
    assert unmap_large_blocks_on_free.cache_info().currsize == 1
    assert unmap_large_blocks_on_free() == (platform.libc_ver()[0] == "glibc")
