"""The stacked engine against a hand-written loop, and a run alone against the same run stacked."""

from __future__ import annotations

import math

import torch

from initbench.core.registry import build_from_spec
from initbench.core.runtime import derive_seed
from initbench.engines.base import Run
from initbench.engines.stacked import StackedForward
from initbench.nets.activations import ACTIVATIONS
from initbench.nets.architectures import linear_context
from initbench.schemes.base import SCHEMES

TANH = ACTIVATIONS.get("tanh")()


def make_run(spec: str, seed: int, bias: str | None = None) -> Run:
    return Run(
        label=spec,
        seed=seed,
        scheme=build_from_spec(SCHEMES, spec).resolve(TANH),
        bias=None if bias is None else build_from_spec(SCHEMES, bias).resolve(TANH),
    )


def collect(runs: list[Run], depth: int, width: int, batch: int, use_bias: bool = False) -> list[torch.Tensor]:
    engine = StackedForward(runs, TANH, torch.device("cpu"), torch.float64)
    x = engine.inputs(batch, width)
    return [output.post.clone() for output in engine.layers(x, [width] * depth, use_bias)]


def test_engine_equals_a_hand_written_loop() -> None:
    """h = x Wᵀ + b, φ = tanh, weights then bias drawn from torch.Generator().manual_seed(seed)."""
    width, batch, seed = 6, 5, 11
    outputs = collect([make_run("xavier_normal:gain=auto", seed, bias="normal:std=0.1")], depth=3, width=width, batch=batch, use_bias=True)
    x = torch.empty(batch, width, dtype=torch.float64).normal_(generator=torch.Generator().manual_seed(derive_seed(seed, "input")))
    generator = torch.Generator().manual_seed(seed)
    std = (5 / 3) * math.sqrt(2 / (width + width))
    for layer in range(3):
        weight = torch.empty(width, width, dtype=torch.float64).normal_(0, std, generator=generator)
        bias = torch.empty(width, dtype=torch.float64).normal_(0, 0.1, generator=generator)
        x = torch.tanh(x @ weight.T + bias)
        assert torch.allclose(outputs[layer][0], x, rtol=1e-12, atol=1e-14)


def test_a_run_alone_equals_the_same_run_stacked() -> None:
    specs = ["zeros", "random", "xavier_uniform:gain=auto", "orthogonal"]
    stacked_runs = [make_run(spec, seed) for spec in specs for seed in (0, 1)]
    stacked = collect(stacked_runs, depth=10, width=32, batch=16)
    for index, run in enumerate(stacked_runs):
        alone = collect([make_run(run.label, run.seed)], depth=10, width=32, batch=16)
        for layer in range(10):
            assert torch.allclose(alone[layer][0], stacked[layer][index], rtol=1e-10, atol=1e-12)


def test_runs_with_the_same_seed_share_inputs_and_draws_differ_by_seed() -> None:
    engine = StackedForward([make_run("he", 0), make_run("xavier", 0), make_run("he", 1)], TANH, torch.device("cpu"), torch.float32)
    x = engine.inputs(4, 3)
    assert torch.equal(x[0], x[1])
    assert not torch.equal(x[0], x[2])


def test_rerun_is_bit_for_bit() -> None:
    runs = [make_run("he", 3), make_run("random", 4)]
    first, second = collect(runs, 5, 16, 8), collect(runs, 5, 16, 8)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_backward_equals_autograd_on_a_tiny_net() -> None:
    """Gradients of L = Σ x^L ⊙ r / √batch, by the engine and by autograd on the same weights."""
    widths, batch, seed = [4, 3, 6], 5, 2
    runs = [make_run("xavier_normal:gain=auto", seed, bias="normal:std=0.2"), make_run("he", seed + 1, bias="normal:std=0.2")]
    engine = StackedForward(runs, TANH, torch.device("cpu"), torch.float64)
    x = engine.inputs(batch, 4)
    pres = [output.pre for output in engine.layers(x, widths, use_bias=True, keep_states=True)]
    gradients = {gradient.layer: gradient for gradient in engine.backward(x, pres)}
    direction = engine.loss_direction(batch, widths[-1])

    for index, run in enumerate(runs):
        generator = torch.Generator().manual_seed(run.seed)
        weights, pre_activations, fan_in = [], [], 4
        for layer, fan_out in enumerate(widths, start=1):
            weight = torch.empty(fan_out, fan_in, dtype=torch.float64)
            bias = torch.empty(fan_out, dtype=torch.float64)
            run.scheme.sample_(weight, linear_context(layer, len(widths), fan_in, fan_out, "weight"), generator)
            run.bias.sample_(bias, linear_context(layer, len(widths), fan_in, fan_out, "bias"), generator)
            weights.append((weight.requires_grad_(), bias))
            fan_in = fan_out
        hidden = x[index]
        for weight, bias in weights:
            pre = hidden @ weight.T + bias
            pre.retain_grad()
            pre_activations.append(pre)
            hidden = torch.tanh(pre)
        ((hidden * direction[index]).sum() / math.sqrt(batch)).backward()
        for layer in (1, 2, 3):
            assert torch.allclose(gradients[layer].grad[index], pre_activations[layer - 1].grad, rtol=1e-10, atol=1e-14)
            assert torch.allclose(gradients[layer].weight_grad[index], weights[layer - 1][0].grad, rtol=1e-10, atol=1e-14)


def test_reused_buffers_give_the_same_layers_as_fresh_tensors() -> None:
    """Without keep_states the engine writes h and φ(h) into reused buffers (φ in place); every
    layer must equal the fresh-tensor pass, including φ = identity, where x is a φ(h) buffer, and
    a change of width, where the buffers are replaced."""
    runs = [make_run("xavier_normal", seed) for seed in (0, 1)]
    widths = [6, 6, 4, 4, 4]
    for name in ("linear", "relu", "gelu"):
        activation = ACTIVATIONS.get(name)()
        passes = []
        for keep_states in (True, False):
            engine = StackedForward(runs, activation, torch.device("cpu"), torch.float64)
            passes.append([(output.pre.clone(), output.post.clone()) for output in engine.layers(engine.inputs(3, 6), widths, use_bias=False, keep_states=keep_states)])
        for (fresh_pre, fresh_post), (reused_pre, reused_post) in zip(*passes, strict=True):
            assert torch.equal(fresh_pre, reused_pre) and torch.equal(fresh_post, reused_post)
