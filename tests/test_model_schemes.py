"""Schemes that change or read the whole model: Fixup, SkipInit/ReZero and checkpoint.

References: the Fixup paper's rules (zeroed last layers, the L^(−1/(2m−2)) factor on torch's own
Kaiming draws), each model's blocks run by hand, each run trained alone against the stack, torch's
own ``load_state_dict(strict=True)`` for the saved key layout, and ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import math
import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch

from initbench.config.loading import validate_config
from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import SilentProgress
from initbench.core.registry import build_from_spec
from initbench.data.loading import load_dataset
from initbench.engines.choice import MODULE, STACKED, select
from initbench.engines.modules import build_model, build_stack, module_inputs
from initbench.experiments.base import RunContext, build_runs
from initbench.experiments.train import TrainExperiment
from initbench.nets.architectures import ResidualBlock
from initbench.runs.runner import prepare
from tests.conftest import write_config

CPU = torch.device("cpu")


def make_config(**sections: object) -> Config:
    raw: dict = {"seeds": 2, "dtype": "float64", "device": "cpu"}
    raw.update(sections)
    return validate_config(raw, "(test)")


def context_for(config: Config) -> RunContext:
    return RunContext(config=config, device=CPU, dtype=torch.float64, progress=SilentProgress())


def stack_for(config: Config, **kwargs: object):
    runs = build_runs(config)
    return runs, build_stack(config, runs, CPU, **kwargs)


RESMLP = {"arch": "resmlp", "depth": 4, "width": 8, "bias": True}
FACTORY = {"arch": "module", "factory": "tests.probe_models:residual_mlp", "kwargs": {"width": 6, "blocks": 3, "branch_layers": 3}}


# --- Fixup ---------------------------------------------------------------------------------------------


def test_fixup_makes_every_block_the_identity_at_init() -> None:
    config = make_config(model=RESMLP, init={"schemes": ["he", "fixup"], "bias": "normal:std=0.3"}, input={"batch": 5})
    runs, stack = stack_for(config)
    x = module_inputs(config, runs, CPU)[0]
    for run, model in zip(runs, [stack.run_model(index) for index in range(len(runs))], strict=True):
        blocks = [module for module in model.modules() if isinstance(module, ResidualBlock)]
        with torch.no_grad():
            differences = [float((block(x) - x).abs().max()) for block in blocks]
        if run.label == "fixup":
            assert differences == [0.0] * 4  # the branch's last layer, weight and bias, is 0
        else:
            assert min(differences) > 0.1


def test_fixup_on_a_marked_factory_zeroes_last_layers_and_the_classifier() -> None:
    config = make_config(model=FACTORY, init={"schemes": ["fixup"], "bias": "normal:std=0.3"}, input={"shape": [5, 6]})
    _, stack = stack_for(config)
    model = stack.run_model(0)
    x = torch.randn(5, 6, dtype=torch.float64)
    for block in model[:3]:
        assert torch.equal(block(x), x)
        assert torch.equal(block.branch[-1].weight, torch.zeros(6, 6, dtype=torch.float64)) and not block.branch[-1].bias.any()
        assert block.branch[0].bias.abs().min() > 0  # the other layers' biases follow init.bias
    head = model[3]
    assert not head.weight.any() and not head.bias.any()


@pytest.mark.parametrize(("branch_layers", "exponent"), [(2, -1 / 2), (3, -1 / 4)])
def test_fixup_scales_the_branches_by_the_formula(branch_layers: int, exponent: float) -> None:
    """Inside a branch of m layers in a net of L branches, fixup's weight is He's draw of the same seed
    times L^(−1/(2m−2)), so its std is √2/√fan_in · L^(−1/(2m−2))."""
    blocks, width = 16, 64
    model = {**FACTORY, "kwargs": {"width": width, "blocks": blocks, "branch_layers": branch_layers}}
    config = make_config(model=model, init={"schemes": ["he", "fixup"]}, input={"shape": [4, width]}, seeds=1)
    _, stack = stack_for(config)
    he, fixup = stack.run_model(0), stack.run_model(1)
    factor = blocks**exponent
    scaled = []
    for he_block, fixup_block in zip(he[:blocks], fixup[:blocks], strict=True):
        for he_layer, fixup_layer in zip(he_block.branch[:-1:2], fixup_block.branch[:-1:2], strict=True):
            torch.testing.assert_close(fixup_layer.weight, he_layer.weight * factor, rtol=1e-15, atol=0)
            scaled.append(fixup_layer.weight.flatten())
    measured = float(torch.cat(scaled).detach().std())
    assert measured == pytest.approx(math.sqrt(2 / width) * factor, rel=0.02)  # 16·(m−1)·4096 entries: ±0.5% std error


def test_fixup_with_one_layer_branches_zeroes_them_and_scales_nothing() -> None:
    config = make_config(model={**FACTORY, "kwargs": {"width": 5, "blocks": 2, "branch_layers": 1}}, init={"schemes": ["fixup"]}, input={"shape": [3, 5]})
    _, stack = stack_for(config)
    assert all(not block.branch[0].weight.any() for block in stack.run_model(0)[:2])


def test_fixup_and_skipinit_scalars_are_stacked_and_train_and_each_run_trains_as_alone() -> None:
    raw = {"experiment": "train", "model": {"arch": "resmlp", "depth": 2, "width": 6, "bias": True}, "seeds": 1,
           "train": {"dataset": "digits:classes=0-2", "steps": 6, "lr": 0.1, "eval_every": 3, "batch_size": 32, "save_models": True}}

    def losses(labels: list[str]):
        config = make_config(**raw, init={"schemes": labels})
        record = TrainExperiment().measure(context_for(config), build_runs(config))
        return np.array([evaluation.loss.numpy() for evaluation in record.evaluations]), record

    mixed, record = losses(["he", "fixup", "rezero"])
    for index, label in enumerate(("he", "fixup", "rezero")):
        np.testing.assert_allclose(losses([label])[0][:, 0], mixed[:, index], rtol=1e-9)
    assert record.model_states is not None
    _, fixup_state, rezero_state = record.model_states
    assert fixup_state["blocks.0.branch.fixup_scale"] != 1 and fixup_state["blocks.0.branch.0.fixup_shift.value"] != 0  # they trained
    assert rezero_state["blocks.1.branch.skipinit_gate"] != 0
    assert not any("skipinit" in key for key in fixup_state) and not any("fixup" in key for key in rezero_state)  # own structure only

    config = make_config(**raw, init={"schemes": ["he", "fixup", "rezero"]})
    _, stack = stack_for(config, outputs=3, inputs=64)
    data = load_dataset("digits:classes=0-2", 0)
    x, y = torch.as_tensor(data.x_train[:32], dtype=torch.float64), torch.as_tensor(data.y_train[:32])
    initial, set_gradients = stack.losses(x.expand(3, *x.shape), y.expand(3, 32), "multiclass")
    set_gradients()
    he, fixup, rezero = 0, 1, 2
    scale_bias = stack.params["blocks.0.branch.fixup_bias"].grad
    gate = stack.params["blocks.0.branch.skipinit_gate"].grad
    assert gate[rezero] != 0 and gate[he] == 0 and gate[fixup] == 0  # inert where it is not the run's own
    assert scale_bias[he] == 0 and scale_bias[rezero] == 0
    # Fixup's classifier is 0: the logits are equal, so the loss is ln 3, and only the head has a gradient at init.
    assert float(initial[fixup]) == pytest.approx(math.log(3), rel=1e-12) and scale_bias[fixup] == 0


def test_skipinit_blocks_are_the_identity_and_its_weights_are_the_inner_schemes() -> None:
    config = make_config(model=RESMLP, init={"schemes": ["xavier_normal", "skipinit:inner=xavier_normal"]}, input={"batch": 5}, seeds=1)
    runs, stack = stack_for(config)
    plain, gated = stack.run_model(0), stack.run_model(1)
    x = module_inputs(config, runs, CPU)[0]
    for plain_block, gated_block in zip(plain.blocks, gated.blocks, strict=True):
        assert torch.equal(gated_block(x), x)
        assert torch.equal(plain_block.branch[0].weight, gated_block.branch[0].weight)  # same draws, same seed
        assert torch.equal(plain_block(x), x + plain_block.branch(x))


def test_skipinit_needs_a_residual_branch_and_model_schemes_leave_the_fast_engine() -> None:
    with pytest.raises(InitbenchError, match="no residual branch"):
        stack_for(make_config(model={"depth": 2, "width": 4}, init={"schemes": ["skipinit"]}, input={"batch": 3}))
    assert select(make_config(model={"depth": 2, "width": 4}, init={"schemes": ["fixup"]})).backend == MODULE
    assert select(make_config(model={"depth": 2, "width": 4}, init={"schemes": ["he"]})).backend == STACKED
    with pytest.raises(InitbenchError, match="cannot initialize a bias"):
        make_config(init={"scheme": "he", "bias": "fixup"})
    with pytest.raises(InitbenchError, match="must draw each parameter"):
        make_config(init={"scheme": "fixup:inner=constructor"})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("compare", "he", "fixup", "--depth", "3", "--width", "8", "--batch", "4"), "fixup: the model has no residual branch"),
        (("compare", "he", "skipinit", "--depth", "3", "--width", "8", "--batch", "4", "model.arch=cnn", "input.image_size=4"), "no residual branch to gate"),
        (("compare", "he", "--depth", "3", "--width", "8", "--batch", "4", "model.arch=resmlp", "init.rules=[{match: Conv2D, scheme: he}]"), "matches no module"),
        (("compare", "he", "fixup", "--experiment", "train", "--dataset", "digits", "--steps", "1"), "fixup: the model has no residual branch"),
    ],
)
def test_a_scheme_or_rule_the_network_refuses_leaves_no_run_directory(cli, tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    """Refused before the directory is claimed (a dry initialization in the experiment's check): a
    plain net has no residual branch for Fixup or SkipInit, and a rule must match a module."""
    result = cli(*arguments, "--out", tmp_path / "r")
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "r").exists()


# --- checkpoint --------------------------------------------------------------------------------------


def saved(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


def test_train_saves_models_that_checkpoint_loads_exactly(tmp_path: Path) -> None:
    model = {"arch": "resmlp", "depth": 2, "width": 6, "bias": True, "norm": "batchnorm"}  # running statistics: buffers
    train = {"dataset": "digits:classes=5-9", "steps": 4, "lr": 0.05, "eval_every": 2, "batch_size": 32}
    config = make_config(experiment="train", model=model, init={"schemes": ["he"]}, train={**train, "save_models": True})
    result = TrainExperiment().run(context_for(config))
    assert sorted(result.files) == ["models/he-seed0.pt", "models/he-seed1.pt"]
    path = tmp_path / "he-seed1.pt"
    path.write_bytes(result.files["models/he-seed1.pt"])
    state = torch.load(path, weights_only=True)
    fresh = build_model(config, outputs=5, inputs=64)
    fresh.load_state_dict(state, strict=True)  # torch's own check: the model's key layout, every tensor
    assert state["blocks.0.branch.1.num_batches_tracked"] > 0 and state["blocks.0.branch.1.running_var"].sub(1).abs().max() > 0

    again = make_config(experiment="train", model=model, init={"schemes": [f"checkpoint:path={path}"]}, train=train)
    _, stack = stack_for(again, outputs=5, inputs=64)
    loaded = stack.run_state_dict(0)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[key], state[key]) for key in state)
    summary = TrainExperiment().run(context_for(again)).summary
    assert summary["schemes"][f"checkpoint:path={path}"]["checkpoint"]["tensors_from_file"] == len(state) == 22  # stem 2, 2 blocks × 9, head 2


def test_checkpoint_loads_a_plain_state_dict_and_names_mismatched_shapes(tmp_path: Path) -> None:
    from initbench.nets.activations import ACTIVATIONS
    from initbench.nets.architectures import build_builtin

    relu = build_from_spec(ACTIVATIONS, "relu")
    reference = build_builtin("resmlp", relu, [8] * 3, 8, False, "none", None).double()
    path = saved(reference.state_dict(), tmp_path / "plain.pt")
    _, stack = stack_for(make_config(model={"arch": "resmlp", "depth": 3, "width": 8}, init={"schemes": [f"checkpoint:path={path}"]}, input={"batch": 2}))
    assert all(torch.equal(stack.run_state_dict(seed)[key], value) for seed in (0, 1) for key, value in reference.state_dict().items())

    wide = saved(build_builtin("resmlp", relu, [9] * 3, 9, False, "none", None).double().state_dict(), tmp_path / "wide.pt")
    with pytest.raises(InitbenchError, match=r"blocks\.0\.branch\.0\.weight is \[9, 9\] in the file and \[8, 8\] in the model"):
        stack_for(make_config(model={"arch": "resmlp", "depth": 3, "width": 8}, init={"schemes": [f"checkpoint:path={wide}"]}, input={"batch": 2}))
    float32 = saved(reference.float().state_dict(), tmp_path / "float32.pt")
    with pytest.raises(InitbenchError, match="torch.float32 in the file and torch.float64 in the model"):
        stack_for(make_config(model={"arch": "resmlp", "depth": 3, "width": 8}, init={"schemes": [f"checkpoint:path={float32}"]}, input={"batch": 2}))


def test_strict_needs_every_key_and_non_strict_keeps_the_fallback_draw(tmp_path: Path) -> None:
    model = {"arch": "resmlp", "depth": 2, "width": 5, "bias": True}
    train = {"dataset": "digits:classes=0-4", "steps": 1}
    source = make_config(experiment="train", model=model, init={"schemes": ["xavier_normal"]}, seeds=1, train=train)
    _, stack = stack_for(source, outputs=5, inputs=64)
    state = stack.run_state_dict(0)
    body = saved({key: value for key, value in state.items() if not key.startswith("head.")}, tmp_path / "body.pt")
    with pytest.raises(InitbenchError, match=r"2 of the model's tensors are not in the file \(head\.linear\.weight, head\.linear\.bias\)"):
        stack_for(make_config(experiment="train", model=model, init={"schemes": [f"checkpoint:path={body}"]}, seeds=1, train=train), outputs=5, inputs=64)
    loose = make_config(experiment="train", model=model, init={"schemes": [f"checkpoint:path={body},strict=false,fallback=lecun_normal"]}, seeds=1, train=train)
    _, loaded = stack_for(loose, outputs=5, inputs=64)
    _, lecun = stack_for(make_config(experiment="train", model=model, init={"schemes": ["lecun_normal"]}, seeds=1, train=train), outputs=5, inputs=64)
    got, drawn = loaded.run_state_dict(0), lecun.run_state_dict(0)
    for key in state:
        assert torch.equal(got[key], drawn[key] if key.startswith("head.") else state[key]), key  # the bias: init.bias, zeros
    assert loose.resolved_init()[0][0][1].notes()["checkpoint"]["tensors_from_file"] == len(state) - 2
    full = saved(state, tmp_path / "full.pt")
    fresh_head = make_config(experiment="train", model=model, init={"schemes": [f"checkpoint:path={full},exclude=head.*,fallback=lecun_normal"]}, seeds=1, train=train)
    assert all(torch.equal(stack_for(fresh_head, outputs=5, inputs=64)[1].run_state_dict(0)[key], got[key]) for key in state)
    everything = make_config(experiment="train", model=model, init={"schemes": [f"checkpoint:path={full},exclude=*"]}, seeds=1, train=train)
    with pytest.raises(InitbenchError, match=f"exclude='\\*' leaves none of the file's {len(state)} tensors"):
        stack_for(everything, outputs=5, inputs=64)


class Payload:
    """A pickle that would create a file when unpickled, if the loader ran its code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_checkpoint_refuses_code_and_other_bad_files_with_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save({"weight": Payload(marker)}, buffer)
    (tmp_path / "evil.pt").write_bytes(buffer.getvalue())
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    cases = {"evil.pt": "cannot be loaded as weights only", "list.pt": "holds a list, not a state dict", "text.pt": "cannot be loaded", "missing.pt": "does not exist"}
    for name, message in cases.items():
        with pytest.raises(InitbenchError, match=message) as caught:
            prepare(make_config(init={"scheme": f"checkpoint:path={tmp_path / name}"}))
        assert "\n" not in caught.value.message
    assert not marker.exists()
    with pytest.raises(InitbenchError, match="needs the file"):
        make_config(init={"scheme": "checkpoint"})


def test_a_bad_checkpoint_is_a_user_error_on_the_command_line(cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", "model: {arch: resmlp, depth: 2, width: 4}\ninput: {batch: 2}\n")
    result = cli("run", config, f"init.scheme=checkpoint:path={tmp_path / 'none.pt'}", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "does not exist" in result.stderr and not (tmp_path / "r").exists()


# --- digits subsets and saved files in the run directory ----------------------------------------------


def test_digits_classes_keep_and_renumber_the_full_datasets_rows() -> None:
    full = load_dataset("digits", 0)
    upper = load_dataset("digits:classes=5-9", 0)
    pair = load_dataset({"name": "digits", "classes": [7, 2]}, 0)
    for split in ("train", "test"):
        x, y = getattr(full, f"x_{split}"), getattr(full, f"y_{split}")
        np.testing.assert_array_equal(getattr(upper, f"x_{split}"), x[y >= 5])
        np.testing.assert_array_equal(getattr(upper, f"y_{split}"), y[y >= 5] - 5)
        np.testing.assert_array_equal(getattr(pair, f"y_{split}"), (y[(y == 2) | (y == 7)] == 7).astype(int))
    assert (upper.n_classes, upper.output_dim, pair.task) == (5, 5, "binary")
    with pytest.raises(InitbenchError, match="at least two different digits"):
        load_dataset("digits:classes=4-4", 0)


def test_save_models_writes_one_file_per_run_into_the_run_directory(cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", "experiment: train\nmodel: {hidden: [4]}\ninit: {schemes: [he, 'normal:std=0.1']}\n")
    result = cli("run", config, "train.dataset=digits:classes=0-1", "train.steps=2", "train.save_models=true", "--seeds", "2", "--out", tmp_path / "r", "--quiet")
    assert result.exit_code == 0, result.output
    files = sorted(path.name for path in (tmp_path / "r" / "models").iterdir())
    assert files == ["he-seed0.pt", "he-seed1.pt", "normal_std_0.1-seed0.pt", "normal_std_0.1-seed1.pt"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["schemes"]["normal:std=0.1"]["model_files"] == ["models/normal_std_0.1-seed0.pt", "models/normal_std_0.1-seed1.pt"]
    state = torch.load(tmp_path / "r" / "models" / "he-seed1.pt", weights_only=True)
    assert sorted(state) == ["blocks.0.0.weight", "head.linear.weight"]


def test_a_sweep_with_a_point_the_network_refuses_writes_nothing_and_can_be_retried(cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", "model: {depth: 2, width: 4}\ninput: {batch: 4}\n")
    refused = cli("sweep", config, "init.scheme=he,skipinit", "--out", tmp_path / "sweep")
    assert refused.exit_code == 2 and "no residual branch to gate" in refused.stderr and not (tmp_path / "sweep").exists()
    assert cli("sweep", config, "init.scheme=he,orthogonal", "--out", tmp_path / "sweep", "--quiet").exit_code == 0


def test_a_probe_whose_model_rejects_the_shape_writes_nothing(cli, tmp_path: Path) -> None:
    result = cli("probe", "tests.probe_models:small_mlp", "--input-shape", "4,7", "--out", tmp_path / "probe")
    assert result.exit_code == 2 and "failed on inputs of shape [4, 7]" in result.stderr and not (tmp_path / "probe").exists()


def test_a_refused_resume_leaves_the_run_as_it_was(cli, tmp_path: Path) -> None:
    """Resuming a checkpoint-initialized run whose init file is gone is refused, and the run stays
    interrupted (resumable once the file is back), with the refusal recorded."""
    pretrained = tmp_path / "pretrained.pt"
    config = write_config(tmp_path / "c.yaml", f"model: {{arch: resmlp, depth: 2, width: 4}}\ninput: {{batch: 4}}\ninit: {{scheme: 'checkpoint:path={pretrained},strict=false'}}\n")
    torch.save({"blocks.0.branch.0.weight": torch.eye(4)}, pretrained)
    assert cli("run", config, "--out", tmp_path / "run", "--quiet").exit_code == 0
    meta_path = tmp_path / "run" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["status"] = "interrupted"
    meta_path.write_text(json.dumps(meta))
    pretrained.unlink()
    result = cli("run", "--resume", tmp_path / "run")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    after = json.loads(meta_path.read_text())
    assert after["status"] == "interrupted" and "does not exist" in after["error"]
