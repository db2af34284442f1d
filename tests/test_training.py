"""Batched training: a run in the stack trains exactly as it would alone, and learns what it should."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from initbench.core.registry import build_from_spec
from initbench.data.loading import load_dataset
from initbench.engines.base import Run
from initbench.engines.training import OptimizerSettings, mlp_trainer, per_run_loss, per_run_loss_gradient
from initbench.nets.activations import ACTIVATIONS
from initbench.schemes.base import SCHEMES
from tests.conftest import write_config

TANH = ACTIVATIONS.get("tanh")()
RELU = ACTIVATIONS.get("relu")()


def make_runs(specs: list[str], seeds: list[int], activation=RELU, bias: str = "normal:std=0.1") -> list[Run]:
    return [
        Run(spec, seed, build_from_spec(SCHEMES, spec).resolve(activation), build_from_spec(SCHEMES, bias).resolve(activation))
        for spec in specs
        for seed in seeds
    ]


def plain_sgd(lr: float) -> OptimizerSettings:
    """Full-batch SGD at ``lr``, without momentum or weight decay."""
    return OptimizerSettings("sgd", lr=lr, momentum=0.0, weight_decay=0.0, batch_size=None)


def losses(runs: list[Run], dataset_spec: str, hidden: list[int], activation, optimizer: str, batch_size: int | None, steps: int) -> torch.Tensor:
    """Training loss of every run at every step, ``[steps, runs]``, in float64."""
    trainer = mlp_trainer(
        runs, load_dataset(dataset_spec, 0), hidden, activation, True, torch.device("cpu"), torch.float64,
        OptimizerSettings(optimizer, lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=batch_size),
    )
    history = []
    for step in range(steps):
        history.append(trainer.evaluate(step).loss)
        trainer.step(step)
    return torch.stack(history)


@pytest.mark.parametrize(
    ("dataset", "hidden", "optimizer", "batch_size"),
    [("circles", [10, 5], "sgd", None), ("blobs", [16], "adam", 32), ("teacher:n_train=200,n_test=50", [8, 8], "sgd", 50)],
)
def test_a_run_in_the_stack_trains_exactly_as_alone(dataset: str, hidden: list[int], optimizer: str, batch_size: int | None) -> None:
    runs = make_runs(["he", "xavier_uniform", "normal:std=0.5"], [0, 1], activation=TANH)
    stacked = losses(runs, dataset, hidden, TANH, optimizer, batch_size, steps=40)
    for index, run in enumerate(runs):
        alone = losses([run], dataset, hidden, TANH, optimizer, batch_size, steps=40)[:, 0]
        assert torch.allclose(stacked[:, index], alone, rtol=1e-9, atol=1e-12), run


def test_stacked_model_equals_nn_linear_layers() -> None:
    """The stack's forward pass is the plain MLP's: copy run 0's weights into nn.Linear layers."""
    runs = make_runs(["he"], [3, 4])
    trainer = mlp_trainer(runs, load_dataset("circles", 0), [10, 5], RELU, True, torch.device("cpu"), torch.float64, plain_sgd(0.1))
    sizes = [2, 10, 5, 1]
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(trainer.model.weights[index][1])
            linear.bias.copy_(trainer.model.biases[index][1])
        layers += [linear, torch.nn.ReLU()]
    reference = torch.nn.Sequential(*layers[:-1])
    x = trainer.x_train
    assert torch.allclose(trainer.model(trainer.stacked(x))[1], reference(x))


@pytest.mark.parametrize(
    ("dataset", "hidden", "activation"),
    [("circles", [10, 5], RELU), ("blobs", [16], TANH), ("teacher:n_train=200,n_test=50", [8, 8], ACTIVATIONS.get("gelu")())],
)
def test_written_out_gradients_equal_autograd(dataset: str, hidden: list[int], activation) -> None:
    """set_gradients with per_run_loss_gradient is d(Σ_r L_r)/dθ, as autograd computes it."""
    runs = make_runs(["he", "normal:std=0.5"], [0, 1], activation=activation)
    trainer = mlp_trainer(runs, load_dataset(dataset, 0), hidden, activation, True, torch.device("cpu"), torch.float64, plain_sgd(0.1))
    x, y = trainer.next_batch()
    per_run_loss(trainer.model(x), y, trainer.dataset.task).sum().backward()
    expected = [parameter.grad.clone() for parameter in trainer.model.parameters()]
    trainer.model.zero_grad(set_to_none=True)
    with torch.no_grad():
        outputs, inputs, pres = trainer.model.traced(x)
        trainer.model.set_gradients(inputs, pres, per_run_loss_gradient(outputs, y, trainer.dataset.task))
    for parameter, gradient in zip(trainer.model.parameters(), expected, strict=True):
        assert parameter.grad is not None, "set_gradients must set every parameter's gradient"
        torch.testing.assert_close(parameter.grad, gradient, rtol=1e-10, atol=1e-14)


def test_zero_init_never_breaks_symmetry() -> None:
    """With identical initial units (constant weights), every hidden unit stays identical: the
    units receive identical gradients, so training cannot tell them apart."""
    for spec, activation in (("zeros", RELU), ("constant:value=0.3", TANH)):
        runs = [Run(spec, 0, build_from_spec(SCHEMES, spec).resolve(activation), build_from_spec(SCHEMES, "zeros"))]
        trainer = mlp_trainer(runs, load_dataset("circles", 0), [10, 5], activation, True, torch.device("cpu"), torch.float64, plain_sgd(0.5))
        for step in range(200):
            trainer.step(step)
        for weight, bias in zip(list(trainer.model.weights)[:-1], list(trainer.model.biases)[:-1]):
            assert torch.allclose(weight[0], weight[0][:1].expand_as(weight[0])), "hidden units differ"
            assert torch.allclose(bias[0], bias[0][:1].expand_as(bias[0]))
        if spec == "constant:value=0.3":
            assert not torch.allclose(trainer.model.weights[0][0], torch.full_like(trainer.model.weights[0][0], 0.3)), "weights should have moved"


def test_a_diverging_run_is_marked_and_the_others_go_on() -> None:
    runs = make_runs(["normal:std=10000", "he"], [0])
    data = load_dataset("teacher:n_train=100,n_test=20", 0)
    trainer = mlp_trainer(runs, data, [16, 16], RELU, True, torch.device("cpu"), torch.float32, plain_sgd(0.1))
    alone = mlp_trainer([runs[1]], data, [16, 16], RELU, True, torch.device("cpu"), torch.float32, plain_sgd(0.1))
    for step in range(20):
        trainer.step(step)
        alone.step(step)
    assert trainer.diverged_at[0] is not None and trainer.diverged_at[1] is None
    frozen = [parameter[0].clone() for parameter in trainer.model.parameters()]
    trainer.step(20)
    assert all(torch.equal(before, parameter[0]) for before, parameter in zip(frozen, trainer.model.parameters())), "a diverged run must stop updating"
    alone.step(20)
    assert torch.allclose(trainer.evaluate(21).loss[1], alone.evaluate(21).loss[0], rtol=1e-5)


def test_he_fits_the_circles_in_a_short_run(cli, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        """
experiment: train
device: cpu
seeds: 2
model: {hidden: [10, 5], activation: relu, bias: true}
init: {schemes: [zeros, he]}
train: {dataset: circles, steps: 1500, lr: 0.3, eval_every: 100}
""",
    )
    result = cli("run", config, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "binary"
    schemes = summary["schemes"]
    assert schemes["zeros"]["test_acc"]["max"] == pytest.approx(0.5)  # chance: never leaves symmetry
    assert schemes["he"]["test_acc"]["median"] > 0.85
    assert schemes["he"]["steps_to_target"] is not None and schemes["he"]["diverged"] == 0
    for entry in schemes.values():  # the median step is over the seeds that reached the target only
        reached = sorted(step for step in entry["steps_to_target_per_seed"] if step is not None)
        assert entry["steps_to_target_reached"] == len(reached)
        assert entry["steps_to_target"] == (reached[(len(reached) - 1) // 2] if reached else None)
    assert schemes["zeros"]["steps_to_target_reached"] == 0
    assert "0 of 2 reached" in (out / "summary.md").read_text()
    with (out / "train_metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["scheme", "seed", "step", "loss", "train_acc", "test_acc"]
    assert {int(row["step"]) for row in rows} == {*range(0, 1500, 100), 1500}
    assert len(rows) == 16 * 2 * 2
    for name in ("training_curves.png", "decision_boundary.png", "summary.md", "config.yaml"):
        assert (out / name).stat().st_size > 0
    assert cli("run", out / "config.yaml", "--out", tmp_path / "again").exit_code == 0
    assert (out / "train_metrics.csv").read_bytes() == (tmp_path / "again" / "train_metrics.csv").read_bytes()


def test_regression_has_no_accuracy(cli, tmp_path: Path) -> None:
    result = cli("compare", "he", "lecun_normal", "--experiment", "train", "--dataset", "teacher", "--steps", "30", "--depth", "2", "--width", "16", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    with (tmp_path / "r" / "train_metrics.csv").open() as stream:
        row = next(csv.DictReader(stream))
    assert row["train_acc"] == "" and row["test_acc"] == ""
    assert not (tmp_path / "r" / "decision_boundary.png").exists()
    assert "test_acc" not in json.loads((tmp_path / "r" / "summary.json").read_text())["schemes"]["he"]


def test_compare_takes_the_experiment_from_the_config(cli, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    result = cli("compare", "zeros", "he", "--config", repo / "configs" / "circles_dlai.yaml", "--seeds", "1", "--steps", "50", "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["experiment"] == "train" and list(summary["schemes"]) == ["zeros", "he"]


BAD_TRAINING = [
    ("train: {dataset: cirlces}", "Did you mean 'circles'"),
    ("train: {optimizer: adamw}", "train.optimizer"),
    ("train: {lr: 0}", "train.lr"),
    ("train: {lr: -1}", "train.lr"),
    ("train: {steps: 0}", "train.steps"),
    ("train: {batch_size: 5000}", "train.batch_size 5000 is larger than the training set"),
    ("train: {stpes: 10}", "Did you mean 'steps'"),
    ("model: {hidden: [10, 0]}", "model.hidden.1"),
    ("train: {dataset: missing.npz}", "missing.npz"),
]


@pytest.mark.parametrize(("text", "message"), BAD_TRAINING)
def test_bad_training_configs_exit_2(cli, tmp_path: Path, text: str, message: str) -> None:
    config = write_config(tmp_path / "bad.yaml", "experiment: train\ndevice: cpu\n" + text + "\n")
    result = cli("run", config, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_evaluating_leaves_batchnorm_running_statistics_alone() -> None:
    """A BatchNorm in train mode updates its running statistics on every call; evaluation is not
    training, so the test set must not move them (they are saved with train.save_models)."""
    from initbench.config.loading import validate_config
    from initbench.data.loading import load_dataset
    from initbench.engines.modules import build_stack
    from initbench.engines.training import StackedTrainer
    from initbench.experiments.base import build_runs

    config = validate_config({"experiment": "train", "model": {"arch": "cnn", "depth": 2, "width": 4, "norm": "batchnorm"}, "train": {"dataset": "digits", "steps": 1}}, "test")
    dataset = load_dataset("digits", 0)
    runs = build_runs(config)
    stack = build_stack(config, runs, torch.device("cpu"), outputs=dataset.output_dim, inputs=1)
    trainer = StackedTrainer(runs, dataset, stack, torch.device("cpu"), torch.float32, plain_sgd(0.01), (1, 8, 8))
    before = {name: value.clone() for name, value in stack.buffers.items()}
    trainer.evaluate(0)
    assert all(torch.equal(before[name], value) for name, value in stack.buffers.items())
