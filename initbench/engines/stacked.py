"""The stacked engine: every run of one shape goes through the network together, layer by layer.

A *run* is one (scheme, seed) pair. For each layer, each run's weights are drawn on the fly from
that run's own ``torch.Generator`` into one slice of a stacked ``[runs, out, in]`` buffer, and one
batched matmul applies all of them. Every random number comes from a CPU generator, whatever the
device: CUDA's generators produce other streams, and a seed must mean the same network on every
device (the draws are then copied to the device, one layer at a time). Only one layer's weights and activations exist at a time, so
memory does not grow with depth, and a run's numbers do not depend on which other runs share the
stack: its draws come from its own generator in the same order either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from initbench.core.runtime import MemoryEstimate, derive_seed, host_buffer
from initbench.engines.base import Run
from initbench.engines.observe import GradientObservation, LayerObservation, NetNotes, activation_statistics, global_std, weight_statistics
from initbench.nets.activations import Activation
from initbench.nets.architectures import linear_context


@dataclass(frozen=True)
class LayerOutput:
    """What one layer computed for every run: ``pre`` = h^l and ``post`` = φ(h^l), ``[runs, batch, out]``,
    with the stacked weight ``[runs, out, in]`` it drew."""

    layer: int  # 1-indexed
    pre: torch.Tensor
    post: torch.Tensor
    weight: torch.Tensor


#: Host bytes each (run, layer) adds to what a propagation run records and writes: its statistics,
#: its histogram's edges and counts, their rows in layer_stats.csv and histograms.csv, and the CSV
#: text. tracemalloc measured 11.4 kB (forward) and 11.7 kB (gradients) over a whole run; the rest
#: covers torch's per-tensor overhead, which tracemalloc does not see.
RECORD_BYTES_PER_RUN_LAYER = 16 * 1024


#: Activation-sized tensors the backward pass holds besides the kept pre-activations: the loss
#: direction, dL/dh and φ(h) below, the products of φ' and their temporaries (a subprocess's peak
#: resident memory, measured in tests/test_memory.py, needed 6 to 8 in different runs, and up to 13
#: once every layer's weight statistics were recorded too).
BACKWARD_TEMPORARIES = 18


#: A CPU generator's state (``torch.Generator().get_state()``), kept per run and layer for the backward pass.
GENERATOR_STATE_BYTES = 5056


def propagation_memory_estimate(runs: int, batch: int, width: int, depth: int, backward: bool, dtype: torch.dtype) -> MemoryEstimate:
    """Peak bytes of a forward or forward-and-backward pass of ``depth`` layers, and of its records.

    On the device: one stacked weight buffer ``runs·width²``, plus three tensors of
    ``runs·batch·width``: the input, h and φ(h) (see :meth:`StackedForward.layers`), and room for
    two float64 tensors of that size (on CUDA the statistics' float64 copy and its temporary; on
    the CPU, masks and temporaries). The backward pass also keeps every layer's pre-activation,
    and ``BACKWARD_TEMPORARIES`` more tensors of that size and two more weights while it steps
    down (see :meth:`StackedForward.backward`). On the host: ``RECORD_BYTES_PER_RUN_LAYER`` per
    run and layer, and for the backward pass each layer's generator states. Computed in Python
    integers, so no size overflows.
    """
    element = torch.finfo(dtype).bits // 8
    activations = runs * batch * width
    weights = 1 + (2 if backward else 0)
    kept = 3 + (depth + BACKWARD_TEMPORARIES if backward else 0)
    device = weights * runs * width * width * element + kept * activations * element + 2 * activations * 8
    host = runs * depth * (RECORD_BYTES_PER_RUN_LAYER + (GENERATOR_STATE_BYTES if backward else 0))
    return MemoryEstimate(device, host)


def draw_stacked(
    runs: list[Run], generators: list[torch.Generator], weight: torch.Tensor, bias: torch.Tensor | None, layer: int, depth: int
) -> None:
    """Fill each run's slice of layer ``layer``'s stacked ``weight [runs, out, in]`` (and ``bias [runs, out]``).

    The one place that fixes the order of draws for the plain MLP: per layer and run, the weight,
    then the bias, from the run's generator. The forward engine and the trainer both draw through
    here, and the module backend draws in the same order, so a seed gives the same network in all.
    """
    fan_out, fan_in = weight.shape[1:]
    weight_context = linear_context(layer, depth, fan_in, fan_out, "weight")
    bias_context = linear_context(layer, depth, fan_in, fan_out, "bias")
    for index, (run, generator) in enumerate(zip(runs, generators, strict=True)):
        run.scheme.sample_(weight[index], weight_context, generator)
        if bias is not None:
            if run.bias is None:
                bias[index].zero_()  # the buffer may be uninitialized; a run without a bias scheme adds 0
            else:
                run.bias.sample_(bias[index], bias_context, generator)


@dataclass(frozen=True)
class LayerGradient:
    """Backpropagated gradients at one layer for every run.

    ``grad`` = dLoss/dh^l ``[runs, batch, out]`` and ``weight_grad`` = dLoss/dW^l ``[runs, out, in]``.
    """

    layer: int  # 1-indexed
    grad: torch.Tensor
    weight_grad: torch.Tensor


class StackedForward:
    """Runs of one shape, simulated together; iterate :meth:`layers` to get each layer's output.

    Args:
        runs: the runs to stack; each draws from ``torch.Generator().manual_seed(run.seed)``.
        activation: φ, shared by all runs.
        device, dtype: where and in what precision to compute.
    """

    def __init__(self, runs: list[Run], activation: Activation, device: torch.device, dtype: torch.dtype) -> None:
        self.runs = runs
        self.activation = activation
        self.device = device
        self.dtype = dtype
        self.generators = [torch.Generator().manual_seed(run.seed) for run in runs]
        #: Each layer's generator states before its draw, kept by :meth:`layers` when asked, so
        #: :meth:`backward` can redraw the same weights instead of holding every layer's.
        self.layer_states: list[list[torch.Tensor]] = []

    def seeded_normal(self, stream: str, batch: int, width: int) -> torch.Tensor:
        """N(0, 1) ``[runs, batch, width]`` from each run's named stream (:func:`derive_seed`)."""
        values = host_buffer((len(self.runs), batch, width), self.device, self.dtype)
        for index, run in enumerate(self.runs):
            values[index].normal_(0.0, 1.0, generator=torch.Generator().manual_seed(derive_seed(run.seed, stream)))
        return values.to(self.device)

    def inputs(self, batch: int, width: int) -> torch.Tensor:
        """x⁰ ~ N(0, 1), ``[runs, batch, width]``; runs with the same seed get the same inputs."""
        return self.seeded_normal("input", batch, width)

    def layers(self, x: torch.Tensor, widths: list[int], use_bias: bool, keep_states: bool = False) -> Iterator[LayerOutput]:
        """Propagate ``x`` through layers of the given output ``widths``, yielding each layer's output.

        h^l = x^{l−1} W^lᵀ + b^l and x^l = φ(h^l), for all runs at once with one batched matmul.
        With ``keep_states``, the generators' states before each layer are kept for :meth:`backward`,
        and every layer's tensors are new. Without it, h and φ(h) (:meth:`Activation.apply_into`)
        are written into two buffers reused by every layer, so a layer's tensors are only valid
        until the next layer is asked for. Fresh tensors cost their page faults again every
        layer (~25 ms a layer at width and batch 1024, 8 runs), and glibc kept some of the freed
        ones (peak memory grew by ~14 MB a layer); reused buffers keep peak memory flat in depth.
        """
        host_weight: torch.Tensor | None = None
        buffers: list[torch.Tensor] = []  # h^l and φ(h^l)
        for layer, fan_out in enumerate(widths, start=1):
            fan_in = x.shape[-1]
            if host_weight is None or host_weight.shape[1:] != (fan_out, fan_in):
                host_weight = host_buffer((len(self.runs), fan_out, fan_in), self.device, self.dtype)
                host_bias = host_buffer((len(self.runs), fan_out), self.device, self.dtype) if use_bias else None
            shape = (*x.shape[:-1], fan_out)
            if keep_states:
                self.layer_states.append([generator.get_state() for generator in self.generators])
            elif not buffers or buffers[0].shape != shape:
                buffers = [torch.empty(shape, device=self.device, dtype=self.dtype) for _ in range(2)]
            draw_stacked(self.runs, self.generators, host_weight, host_bias, layer, len(widths))
            # A blocking copy: the host buffer is drawn into again for the next layer.
            weight = host_weight.to(self.device)
            bias = None if host_bias is None else host_bias.to(self.device)
            pre = None if keep_states else buffers[0]
            if bias is None:
                pre = torch.bmm(x, weight.mT, out=pre)
            else:
                pre = torch.baddbmm(bias.unsqueeze(1), x, weight.mT, out=pre)
            # x^{l−1} may be the φ buffer itself: the matmul has read it by now.
            post = self.activation(pre) if keep_states else self.activation.apply_into(pre, buffers[1])
            yield LayerOutput(layer, pre, post, host_weight)
            x = post

    def redraw_weight(self, layer: int, fan_in: int, fan_out: int) -> torch.Tensor:
        """Layer ``layer``'s stacked weight again, from the generator states kept by :meth:`layers`."""
        weight = host_buffer((len(self.runs), fan_out, fan_in), self.device, self.dtype)
        context = linear_context(layer, len(self.layer_states), fan_in, fan_out, "weight")
        for index, (run, state) in enumerate(zip(self.runs, self.layer_states[layer - 1], strict=True)):
            generator = torch.Generator()
            generator.set_state(state)
            run.scheme.sample_(weight[index], context, generator)
        return weight.to(self.device)

    def loss_direction(self, batch: int, width: int) -> torch.Tensor:
        """The fixed N(0, 1) tensor r ``[runs, batch, width]`` of the scalar loss, per seed (see :meth:`backward`)."""
        return self.seeded_normal("loss", batch, width)

    def backward(self, x: torch.Tensor, pres: list[torch.Tensor]) -> Iterator[LayerGradient]:
        """Backpropagate the loss L = Σ x^L ⊙ r / √batch from the last layer to the first.

        r ~ N(0, 1) is fixed per seed (:meth:`loss_direction`), so dL/dx^L = r/√batch and the
        gradients reflect the network, not a task. Going down, with x^{l−1} = φ(h^{l−1}):
        dL/dW^l = (dL/dh^l)ᵀ x^{l−1}, and dL/dh^{l−1} = (dL/dh^l · W^l) ⊙ φ'(h^{l−1}).

        Args:
            x: the network's input x⁰.
            pres: every layer's pre-activation h^l, from a :meth:`layers` pass with ``keep_states``.

        Yields each layer's gradients, last layer first.
        """
        batch = x.shape[1]
        phi = self.activation
        grad = phi.times_derivative(pres[-1], phi(pres[-1]), self.loss_direction(batch, pres[-1].shape[-1]) / batch**0.5)
        for layer in range(len(pres), 0, -1):
            below = phi(pres[layer - 2]) if layer > 1 else x
            weight = self.redraw_weight(layer, below.shape[-1], grad.shape[-1])
            yield LayerGradient(layer, grad, torch.bmm(grad.mT, below))
            if layer > 1:
                grad = phi.times_derivative(pres[layer - 2], below, torch.bmm(grad, weight))


class StackedMLPNet:
    """The plain MLP on the stacked engine, as a :class:`~initbench.engines.observe.StackedNet`:
    ``depth`` square layers of ``width``, observed one layer at a time.

    Each layer's statistics are taken while it is the current one; only the backward pass keeps
    every layer's pre-activation (it needs them for φ'(h)).
    """

    def __init__(self, runs: list[Run], activation: Activation, device: torch.device, dtype: torch.dtype, batch: int, width: int, depth: int, use_bias: bool) -> None:
        self.runs = runs
        self.engine = StackedForward(runs, activation, device, dtype)
        self.batch, self.width, self.depth, self.use_bias = batch, width, depth, use_bias
        self._inputs: torch.Tensor | None = None
        self._pres: list[torch.Tensor] = []  # kept only for the backward pass: memory grows with depth there

    def task(self, backward: bool) -> tuple[str, int]:
        return f"{'forward + backward' if backward else 'forward'}, {len(self.runs)} runs", self.depth * (2 if backward else 1)

    def forward(self, backward: bool, advance: Callable[[], None]) -> Iterator[LayerObservation]:
        activation = self.engine.activation
        self._inputs = self.engine.inputs(self.batch, self.width)
        for output in self.engine.layers(self._inputs, [self.width] * self.depth, use_bias=self.use_bias, keep_states=backward):
            stats, histograms = activation_statistics(output.pre, output.post, activation.saturated(output.post))
            stats.update(weight_statistics(output.weight, stats["std"]))
            if backward:
                self._pres.append(output.pre)
            advance()
            yield LayerObservation(f"layers.{output.layer - 1}", "Linear", self.width, stats, histograms)

    def backward(self, advance: Callable[[], None]) -> Iterator[GradientObservation]:
        assert self._inputs is not None, "forward(backward=True) first"
        for gradient in self.engine.backward(self._inputs, self._pres):
            advance()
            yield GradientObservation(gradient.layer - 1, global_std(gradient.grad), global_std(gradient.weight_grad))
        self._pres = []

    def notes(self) -> NetNotes:
        return NetNotes()
