"""The stacked trainer: every run of one architecture trained together as one batched model.

A run is one (scheme, seed). Per layer the model holds a weight tensor ``[runs, out, in]`` and a
bias ``[runs, out]``, applied with batched matmuls; one optimizer steps the whole stack. Each
run's initial weights come from its own generator, in the same order as the forward engine
(layer by layer, weight then bias), and each run's minibatch order from its own seeded stream, so
a run trains exactly as it would alone: the stack only shares the arithmetic, never the numbers.
Every optimizer here (SGD with momentum and weight decay, Adam) acts elementwise, which is what
keeps the runs independent.

These nets are small, so a step's time is per-op overhead rather than arithmetic: the model
computes feature-major (long batched-matmul outputs) and backpropagates with written-out
gradients (:meth:`StackedMLP.set_gradients`), fewer and cheaper ops than autograd's graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from initbench.core.runtime import derive_seed
from initbench.data.base import Dataset
from initbench.engines.base import Run
from initbench.engines.stacked import draw_stacked
from initbench.nets.activations import Activation

#: Host bytes each run adds per evaluation: its metrics and its row of train_metrics.csv (about 0.5 kB; doubled for margin).
RECORD_BYTES_PER_EVALUATION = 1024


def training_memory_estimate(
    runs: int, sizes: list[int], n_train: int, n_test: int, batch_size: int | None, optimizer: str, momentum: float,
    evaluations: int, grid_points: int, dtype: torch.dtype,
) -> int:
    """Peak bytes of training ``runs`` stacked MLPs of layer ``sizes`` (input, hidden..., output).

    With P = runs·Σ_l (in_l·out_l + out_l) parameters: the parameters, their gradients, the
    optimizer's state (Adam 2·P, SGD with momentum P) and the copies kept of diverged runs (at
    most P). The data, (n_train + n_test)·(in + out) values, and each run's minibatch order. A pass
    over r rows (:meth:`StackedMLP.traced`) keeps every layer's input and pre-activation,
    runs·r·Σ_l (in_l + out_l), and the backward pass three more tensors of runs·r·max(sizes): the
    peak is the largest pass, a step (``batch_size`` rows), evaluating the training or test set,
    or predicting the ``grid_points`` of the decision boundary. Plus ``evaluations`` records per run.
    """
    element = torch.finfo(dtype).bits // 8
    parameters = runs * sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))
    optimizer_states = 2 if optimizer == "adam" else int(momentum != 0)
    data = (n_train + n_test) * (sizes[0] + sizes[-1]) * element + runs * n_train * 8
    per_row = runs * (sum(sizes[:-1]) + sum(sizes[1:]) + 3 * max(sizes)) * element
    largest_pass = max(batch_size or n_train, n_train, n_test, grid_points) * per_row
    return (3 + optimizer_states) * parameters * element + data + largest_pass + runs * evaluations * RECORD_BYTES_PER_EVALUATION


class StackedMLP(torch.nn.Module):
    """``len(runs)`` MLPs of the same ``sizes`` (input, hidden..., output), stacked on a leading axis.

    Hidden layers apply φ; the output layer is linear (logits or regression outputs).
    """

    def __init__(self, runs: list[Run], sizes: list[int], activation: Activation, use_bias: bool, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.activation = activation
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        # CPU generators on every device, as in the forward engine: a seed is the same network anywhere.
        generators = [torch.Generator().manual_seed(run.seed) for run in runs]
        with torch.no_grad():
            for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
                weight = torch.empty(len(runs), fan_out, fan_in, dtype=dtype)
                bias = torch.empty(len(runs), fan_out, dtype=dtype) if use_bias else None
                draw_stacked(runs, generators, weight, bias, layer, len(sizes) - 1)
                self.weights.append(torch.nn.Parameter(weight.to(device)))
                if bias is not None:
                    self.biases.append(torch.nn.Parameter(bias.to(device)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [runs, batch, in]`` → outputs ``[runs, batch, out]``."""
        return self.traced(x)[0]

    def traced(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The outputs, with every layer's input x^{l−1} and pre-activation h^l for :meth:`set_gradients`.

        Computed feature-major, h^l = W^l x^{l−1} + b^l with activations ``[runs, features, batch]``:
        for the small layers these nets have, CPU batched matmuls whose output is long in the batch
        are 3–5× faster (circles net, 16 runs: 14–30 µs against 70–110 µs for ``x Wᵀ``).
        """
        last = len(self.weights) - 1
        inputs, pres = [], []
        h = x.mT
        for layer, weight in enumerate(self.weights):
            inputs.append(h)
            pre = torch.baddbmm(self.biases[layer].unsqueeze(-1), weight, h) if self.biases else torch.bmm(weight, h)
            pres.append(pre)
            h = self.activation(pre) if layer < last else pre
        return h.mT, inputs, pres

    def losses(self, x: torch.Tensor, y: torch.Tensor, task: str) -> tuple[torch.Tensor, Callable[[], None]]:
        """Each run's loss on ``(x, y)``, ``[runs]``, and a function that sets the parameters' gradients of it."""
        outputs, inputs, pres = self.traced(x)
        return per_run_loss(outputs, y, task), lambda: self.set_gradients(inputs, pres, per_run_loss_gradient(outputs, y, task))

    def set_gradients(self, inputs: list[torch.Tensor], pres: list[torch.Tensor], output_grad: torch.Tensor) -> None:
        """Backpropagate ``output_grad`` = dL/d(outputs) ``[runs, batch, out]`` and set every parameter's ``.grad``.

        With δ^l = dL/dh^l (feature-major, as in :meth:`traced`):
        dL/dW^l = δ^l x^{l−1}ᵀ, dL/db^l = Σ_batch δ^l, and δ^{l−1} = (W^lᵀ δ^l) ⊙ φ'(h^{l−1}).
        Written out rather than left to autograd: at these sizes a step's time is per-op overhead,
        and this skips autograd's bookkeeping (a step: 0.69 ms against 1.15 ms). A test holds it
        to autograd.
        """
        delta = output_grad.mT
        for layer in range(len(self.weights) - 1, -1, -1):
            weight = self.weights[layer]
            weight.grad = torch.bmm(delta, inputs[layer].mT)
            if self.biases:
                self.biases[layer].grad = delta.sum(-1)
            if layer > 0:
                delta = self.activation.times_derivative(pres[layer - 1], inputs[layer], torch.bmm(weight.mT, delta))


def per_run_loss(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Mean loss over the batch for each run, ``[runs]``: logistic, cross-entropy or squared error."""
    if task == "binary":
        return F.binary_cross_entropy_with_logits(outputs[..., 0], targets.to(outputs.dtype), reduction="none").mean(-1)
    if task == "multiclass":
        runs, batch, classes = outputs.shape
        return F.cross_entropy(outputs.reshape(runs * batch, classes), targets.reshape(-1), reduction="none").view(runs, batch).mean(-1)
    return (outputs - targets).pow(2).mean(dim=(1, 2))


def per_run_loss_gradient(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """d(Σ_r L_r)/d(outputs) for :func:`per_run_loss`'s L_r, ``[runs, batch, out]``.

    Each run's outputs enter its own loss only. Per sample, with z the outputs: binary
    σ(z) − y, multiclass softmax(z) − onehot(y), both over the batch size; regression 2(z − y)
    over batch × outputs.
    """
    _, batch, width = outputs.shape
    if task == "binary":
        return ((torch.sigmoid(outputs[..., 0]) - targets) / batch).unsqueeze(-1)
    if task == "multiclass":
        return (torch.softmax(outputs, dim=-1) - F.one_hot(targets, width).to(outputs.dtype)) / batch
    return (outputs - targets) * (2 / (batch * width))


def per_run_accuracy(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor | None:
    """Fraction correct per run (logit > 0, or the arg-max class); None for regression."""
    if task == "binary":
        return ((outputs[..., 0] > 0).long() == targets).double().mean(-1)
    if task == "multiclass":
        return (outputs.argmax(-1) == targets).double().mean(-1)
    return None


@dataclass
class Evaluation:
    """Metrics of every run at one step: ``[runs]`` tensors (accuracies None for regression)."""

    step: int
    loss: torch.Tensor
    train_acc: torch.Tensor | None
    test_acc: torch.Tensor | None

    def subset(self, indices: list[int]) -> Evaluation:
        """The metrics of the runs at ``indices`` only."""
        return Evaluation(
            step=self.step,
            loss=self.loss[indices],
            train_acc=None if self.train_acc is None else self.train_acc[indices],
            test_acc=None if self.test_acc is None else self.test_acc[indices],
        )


@dataclass(frozen=True)
class OptimizerSettings:
    """How the trainer steps: ``optimizer`` "sgd" (with ``momentum``) or "adam", learning rate ``lr``,
    L2 coefficient ``weight_decay``, and minibatch ``batch_size`` (None: full-batch gradient descent)."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int | None


class StackedModel(Protocol):
    """What the trainer trains: the runs' networks stacked, with parameters ``[runs, ...]``.

    :class:`StackedMLP` (the fast path) and :class:`initbench.engines.modules.StackedModules` (any
    other network) are the two.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``[runs, batch, ...]`` → outputs ``[runs, batch, out]``."""
        ...

    def parameters(self) -> Iterator[torch.Tensor]: ...

    def losses(self, x: torch.Tensor, y: torch.Tensor, task: str) -> tuple[torch.Tensor, Callable[[], None]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class StackedTrainer:
    """Trains the runs of one architecture together on one dataset.

    Args:
        runs: the runs (resolved schemes and seeds).
        dataset: the data; its task decides the output size and the loss.
        model: the runs' stacked networks, already drawn (:class:`StackedMLP` or a module stack).
        optimizer: the optimizer, its settings and the minibatch size.
        input_shape: the shape one example has for the model (images: ``(1, 8, 8)``); None: flat.
    """

    def __init__(
        self,
        runs: list[Run],
        dataset: Dataset,
        model: StackedModel,
        device: torch.device,
        dtype: torch.dtype,
        optimizer: OptimizerSettings,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.runs, self.dataset, self.device = runs, dataset, device
        self.model = model
        # foreach: one multi-tensor op per update rather than a loop over the parameters, which is
        # the CPU default (Adam's step: 245 µs against 325 µs for the circles net).
        settings = optimizer
        if settings.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, foreach=True)
        else:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay, foreach=True)
        target_dtype = dtype if dataset.task == "regression" else torch.long
        # Images arrive flat ([n, C·H·W]); a conv net sees them as [n, C, H, W].
        shape = (-1, *input_shape) if input_shape is not None else (-1, dataset.input_dim)
        self.x_train = torch.as_tensor(dataset.x_train, device=device, dtype=dtype).reshape(shape)
        self.y_train = torch.as_tensor(dataset.y_train, device=device, dtype=target_dtype)
        self.x_test = torch.as_tensor(dataset.x_test, device=device, dtype=dtype).reshape(shape)
        self.y_test = torch.as_tensor(dataset.y_test, device=device, dtype=target_dtype)
        self.batch_size = settings.batch_size
        self.batch_streams = [torch.Generator().manual_seed(derive_seed(run.seed, "batches")) for run in runs]
        self.orders: list[torch.Tensor] = []
        self.position = 0
        #: Step at which each run's loss became non-finite (None: still training).
        self.diverged_at: list[int | None] = [None] * len(runs)
        self._frozen: dict[int, list[torch.Tensor]] = {}

    def stacked(self, x: torch.Tensor) -> torch.Tensor:
        """The same inputs for every run, as a view ``[runs, n, d]`` (no copy)."""
        return x.unsqueeze(0).expand(len(self.runs), *x.shape)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each run's next minibatch, ``[runs, batch, d]``: a fresh permutation per epoch per run."""
        n = self.x_train.shape[0]
        if self.batch_size is None:
            return self.stacked(self.x_train), self.stacked(self.y_train)
        if not self.orders or self.position + self.batch_size > n:
            self.orders = [torch.randperm(n, generator=stream).to(self.device) for stream in self.batch_streams]
            self.position = 0
        indices = torch.stack([order[self.position : self.position + self.batch_size] for order in self.orders])
        self.position += self.batch_size
        return self.x_train[indices], self.y_train[indices]

    @torch.no_grad()
    def step(self, step: int) -> None:
        """One optimizer step for every run still training; marks newly diverged runs."""
        x, y = self.next_batch()
        losses, set_gradients = self.model.losses(x, y, self.dataset.task)
        if not bool(torch.isfinite(losses).all()):  # one check per step; the details only on divergence
            for index in torch.nonzero(~torch.isfinite(losses)).flatten().tolist():
                if self.diverged_at[index] is None:
                    self.diverged_at[index] = step
                    # Keep the parameters it diverged with; the stack keeps computing on them,
                    # but they are put back after every step, so a diverged run stops updating.
                    self._frozen[index] = [parameter[index].clone() for parameter in self.model.parameters()]
        if len(self._frozen) == len(self.runs):
            return
        # Every op of the backward pass is per run, so a diverged run's NaN stays in its own slice.
        set_gradients()
        self.optimizer.step()
        for index, saved in self._frozen.items():
            for parameter, value in zip(self.model.parameters(), saved, strict=True):
                parameter[index] = value

    @contextmanager
    def buffers_unchanged(self) -> Iterator[None]:
        """Evaluating must not train: a BatchNorm in train mode updates its running statistics on
        every call, the test set's included. The module backend's stacked buffers are put back
        after; the plain MLP has none."""
        buffers = self.model.buffers if isinstance(getattr(self.model, "buffers", None), dict) else {}
        saved = {name: value.clone() for name, value in buffers.items()}
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    buffers[name].copy_(value)

    @torch.no_grad()
    def evaluate(self, step: int) -> Evaluation:
        """Loss and accuracy on the whole training set, and accuracy on the test set."""
        with self.buffers_unchanged():
            train_outputs = self.model(self.stacked(self.x_train))
            test_outputs = self.model(self.stacked(self.x_test))
        return Evaluation(
            step=step,
            loss=per_run_loss(train_outputs, self.stacked(self.y_train), self.dataset.task).double(),
            train_acc=per_run_accuracy(train_outputs, self.stacked(self.y_train), self.dataset.task),
            test_acc=per_run_accuracy(test_outputs, self.stacked(self.y_test), self.dataset.task),
        )

    @torch.no_grad()
    def predict_grid(self, points: torch.Tensor) -> torch.Tensor:
        """Each run's predicted class at ``points [n, 2]``, ``[runs, n]`` (for decision boundaries)."""
        with self.buffers_unchanged():
            outputs = self.model(self.stacked(points.to(device=self.device, dtype=self.x_train.dtype)))
        if self.dataset.task == "binary":
            return (outputs[..., 0] > 0).long()
        return outputs.argmax(-1)

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on, on the CPU: parameters, optimizer state, each run's
        batch stream and epoch order, and which runs diverged (with the parameters they froze at).
        A trainer given it by :meth:`load_state_dict` continues exactly as this one would."""
        return {
            "model": {name: tensor.cpu() for name, tensor in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "batch_streams": [stream.get_state() for stream in self.batch_streams],
            "orders": [order.cpu() for order in self.orders],
            "position": self.position,
            "diverged_at": list(self.diverged_at),
            "frozen": {index: [tensor.cpu() for tensor in saved] for index, saved in self._frozen.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for stream, stream_state in zip(self.batch_streams, state["batch_streams"], strict=True):
            stream.set_state(stream_state)
        self.orders = [order.to(self.device) for order in state["orders"]]
        self.position = state["position"]
        self.diverged_at = list(state["diverged_at"])
        self._frozen = {int(index): [tensor.to(self.device) for tensor in saved] for index, saved in state["frozen"].items()}


def mlp_trainer(
    runs: list[Run],
    dataset: Dataset,
    hidden: list[int],
    activation: Activation,
    use_bias: bool,
    device: torch.device,
    dtype: torch.dtype,
    optimizer: OptimizerSettings,
) -> StackedTrainer:
    """A trainer of plain MLPs (the fast path): ``hidden`` widths between the dataset's input and output."""
    sizes = [dataset.input_dim, *hidden, dataset.output_dim]
    model = StackedMLP(runs, sizes, activation, use_bias, device, dtype)
    return StackedTrainer(runs, dataset, model, device, dtype, optimizer)
