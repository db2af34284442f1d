"""initbench's benchmarks: each one times initbench against a baseline in the same process and
prints the ratio (medians over repeats). Not a test: speed goals live here, not in the suite.

    python bench/run.py                 # every benchmark
    python bench/run.py train --repeats 5

Results, with the machine they ran on, are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from initbench.activations import ACTIVATIONS
from initbench.datasets import load_dataset
from initbench.engine import Run
from initbench.registry import build_from_spec
from initbench.schemes import SCHEMES
from initbench.training import StackedTrainer


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_benchmark(repeats: int, runs: int = 16, steps: int = 500) -> list[tuple[str, float, float]]:
    """The circles net ([2, 10, 5, 1], ReLU, He, full-batch SGD): ``runs`` runs trained
    sequentially as one nn.Module each (as a tutorial would), with torch.func's vmap ensembling,
    and with initbench's stacked trainer."""
    dataset = load_dataset("circles", 0)
    x = torch.as_tensor(dataset.x_train)
    y = torch.as_tensor(dataset.y_train, dtype=torch.float32)
    relu = ACTIVATIONS.get("relu")()
    he = build_from_spec(SCHEMES, "he").resolve(relu)

    def module(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(2, 10), torch.nn.ReLU(), torch.nn.Linear(10, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                torch.nn.init.zeros_(layer.bias)
        return net

    def sequential() -> None:
        for seed in range(runs):
            net = module(seed)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
            for _ in range(steps):
                optimizer.zero_grad()
                torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y).backward()
                optimizer.step()

    def vmapped() -> None:
        from torch.func import functional_call, grad, stack_module_state, vmap

        nets = [module(seed) for seed in range(runs)]
        params, buffers = stack_module_state(nets)
        base = nets[0]

        def loss(parameters: dict, buffers: dict) -> torch.Tensor:
            return torch.nn.functional.binary_cross_entropy_with_logits(functional_call(base, (parameters, buffers), (x,))[:, 0], y)

        gradient = vmap(grad(loss))
        for _ in range(steps):
            grads = gradient(params, buffers)
            params = {name: value - 0.1 * grads[name] for name, value in params.items()}

    def stacked() -> None:
        trainer = StackedTrainer(
            [Run("he", seed, he, build_from_spec(SCHEMES, "zeros")) for seed in range(runs)],
            dataset, [10, 5], relu, True, torch.device("cpu"), torch.float32, "sgd", 0.1, 0.0, 0.0, None,
        )
        for step in range(steps):
            trainer.step(step)

    baseline = median_seconds(sequential, repeats)
    vmap_time = median_seconds(vmapped, repeats)
    ours = median_seconds(stacked, repeats)
    return [
        (f"train {runs} circles runs × {steps} steps: sequential nn.Module loop", baseline, ours),
        (f"train {runs} circles runs × {steps} steps: torch.func vmap ensemble", vmap_time, ours),
    ]


BENCHMARKS = {"train": train_benchmark}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'benchmark':<72} {'baseline s':>11} {'initbench s':>12} {'speed-up':>9}")
    for name in arguments.names or BENCHMARKS:
        for label, baseline, ours in BENCHMARKS[name](arguments.repeats):
            print(f"{label:<72} {baseline:>11.3f} {ours:>12.3f} {baseline / ours:>8.1f}×")


if __name__ == "__main__":
    main()
