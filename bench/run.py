"""initbench's benchmarks: each times initbench against a baseline measured in the same process
and prints the ratio (medians over repeats). Not a test: speed goals live here, not in the suite.

    python bench/run.py                          # every benchmark, on the CPU
    python bench/run.py forward train --repeats 5
    python bench/run.py forward train --device cuda
    python bench/run.py threads                  # 1 torch thread vs one per core, idle and loaded

Results, with the machine they ran on, are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from initbench.config.loading import validate_config
from initbench.config.run import Config
from initbench.core.interfaces import SilentProgress
from initbench.core.registry import build_from_spec
from initbench.data.loading import load_dataset
from initbench.engines.base import Run
from initbench.engines.training import OptimizerSettings, mlp_trainer
from initbench.experiments.base import RunContext, build_runs
from initbench.experiments.propagation import ForwardExperiment
from initbench.nets.activations import ACTIVATIONS
from initbench.schemes.base import SCHEMES


@dataclass(frozen=True)
class Result:
    """One comparison: ``ratio`` = initbench ÷ baseline (time or memory), and the target for it."""

    name: str
    baseline: float
    initbench: float
    target: str
    unit: str = "s"

    @property
    def ratio(self) -> float:
        return self.initbench / self.baseline


def median_seconds(functions: dict[str, Callable[[], object]], repeats: dict[str, int], device: torch.device) -> dict[str, float]:
    """Median wall time of each function over its ``repeats`` calls, after one warm-up call each.

    The calls are interleaved (one of each per round, while each has repeats left), so a machine
    whose speed drifts over minutes (a shared VM) slows the baseline and initbench alike instead
    of whichever happened to run during the slow minutes. CUDA is synchronized after every call.
    """

    def timed(function: Callable[[], object]) -> float:
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for function in functions.values():
        timed(function)
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_index in range(max(repeats.values())):
        for name, function in functions.items():
            if round_index < repeats[name]:
                times[name].append(timed(function))
    return {name: statistics.median(values) for name, values in times.items()}


def forward_config(depth: int, width: int, batch: int, device: torch.device) -> Config:
    """The issue's forward benchmark: ``compare`` of 4 schemes × 2 seeds, relu. All four draw
    Gaussians, like the floor; orthogonal would add a QR per layer that no floor of draws and
    matmuls contains (it costs more than the layer's matmul at width 1024)."""
    raw = {
        "name": "bench", "device": device.type, "seeds": 2,
        "model": {"depth": depth, "width": width, "activation": "relu"},
        "init": {"schemes": ["xavier_normal", "he", "lecun_normal", "normal:std=0.03"]},
        "input": {"batch": batch},
    }
    return validate_config(raw, "bench")


def run_forward(config: Config, device: torch.device) -> None:
    """initbench's forward experiment without the file output: engine plus statistics."""
    context = RunContext(config=config, device=device, dtype=torch.float32, progress=SilentProgress())
    ForwardExperiment().measure(context, build_runs(config))


def run_train(config: Config, device: torch.device) -> None:
    """initbench's train experiment without the file output: training and evaluation."""
    from initbench.experiments.train import TrainExperiment

    context = RunContext(config=config, device=device, dtype=torch.float32, progress=SilentProgress())
    TrainExperiment().measure(context, build_runs(config))


def forward_benchmark(repeats: int, device: torch.device, depth: int = 100, width: int = 1024, batch: int = 1024) -> list[Result]:
    """The forward engine against (1) its floor: torch drawing the same number of random weights
    and doing the same batched matmuls, and (2) the tutorials' way: an nn.ModuleList of nn.Linear
    layers re-initialized per scheme and seed, one network at a time, with ``.std().item()`` per layer."""
    config = forward_config(depth, width, batch, device)
    runs = 8

    def floor() -> None:
        generator = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(runs, batch, width, device=device)
        weight = torch.empty(runs, width, width, device=device)
        for _ in range(depth):
            weight.normal_(0.0, 0.03, generator=generator)
            x = torch.bmm(x, weight.mT)

    initializers = {
        "xavier": torch.nn.init.xavier_normal_,
        "he": lambda weight: torch.nn.init.kaiming_normal_(weight, nonlinearity="relu"),
        "lecun": lambda weight: torch.nn.init.kaiming_normal_(weight, nonlinearity="linear"),
        "normal": lambda weight: torch.nn.init.normal_(weight, std=0.03),
    }

    def naive() -> None:
        for initialize in initializers.values():
            for seed in range(2):
                torch.manual_seed(seed)
                layers = torch.nn.ModuleList(torch.nn.Linear(width, width, bias=False, device=device) for _ in range(depth))
                for layer in layers:
                    initialize(layer.weight)
                x = torch.randn(batch, width, device=device)
                with torch.no_grad():
                    for layer in layers:
                        x = torch.relu(layer(x))
                        x.std().item()

    # The floor pair is interleaved on its own: the tutorial loop frees ~400 MB of layers per
    # network, and whichever ran after it was measured ~10% slower.
    seconds = median_seconds({"floor": floor, "initbench": lambda: run_forward(config, device)}, dict.fromkeys(("initbench", "floor"), repeats), device)
    seconds |= median_seconds({"naive": naive}, {"naive": max(1, repeats // 2)}, device)
    shape = f"{depth} layers × {width}, batch {batch}, 4 schemes × 2 seeds"
    return [
        Result(f"forward ({shape}) vs torch floor (draws + bmm)", seconds["floor"], seconds["initbench"], "≤ 1.3"),
        Result(f"forward ({shape}) vs tutorial ModuleList loop", seconds["naive"], seconds["initbench"], "< 1"),
    ]


def train_benchmark(repeats: int, device: torch.device, runs: int = 16, steps: int = 500) -> list[Result]:
    """The circles net ([2, 10, 5, 1], ReLU, He, full-batch SGD): ``runs`` runs trained one
    nn.Module at a time (as a tutorial would), as a torch.func vmap ensemble, and stacked."""
    dataset = load_dataset("circles", 0)
    x = torch.as_tensor(dataset.x_train, device=device)
    y = torch.as_tensor(dataset.y_train, dtype=torch.float32, device=device)
    relu = ACTIVATIONS.get("relu")()
    he, zeros = build_from_spec(SCHEMES, "he").resolve(relu), build_from_spec(SCHEMES, "zeros")

    def module(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(2, 10), torch.nn.ReLU(), torch.nn.Linear(10, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                torch.nn.init.zeros_(layer.bias)
        return net.to(device)

    def loss(net: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y)

    def sequential() -> None:
        for seed in range(runs):
            net = module(seed)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
            for _ in range(steps):
                optimizer.zero_grad()
                loss(net).backward()
                optimizer.step()

    def vmapped() -> None:
        from torch.func import functional_call, grad, stack_module_state, vmap

        nets = [module(seed) for seed in range(runs)]
        params, buffers = stack_module_state(nets)
        base = nets[0]
        gradient = vmap(grad(lambda parameters, buffers: loss(lambda inputs: functional_call(base, (parameters, buffers), (inputs,)))))
        for _ in range(steps):
            grads = gradient(params, buffers)
            params = {name: value - 0.1 * grads[name] for name, value in params.items()}

    def stacked() -> None:
        trainer = mlp_trainer(
            [Run("he", seed, he, zeros) for seed in range(runs)], dataset, [10, 5], relu, True, device, torch.float32,
            OptimizerSettings("sgd", lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=None),
        )
        for step in range(steps):
            trainer.step(step)

    seconds = median_seconds({"initbench": stacked, "sequential": sequential, "vmap": vmapped}, dict.fromkeys(("initbench", "sequential", "vmap"), repeats), device)
    shape = f"{runs} circles runs × {steps} steps"
    return [
        Result(f"train ({shape}) vs one nn.Module per run, sequential", seconds["sequential"], seconds["initbench"], "≤ 0.1 (≥ 10× faster)"),
        Result(f"train ({shape}) vs torch.func vmap ensemble", seconds["vmap"], seconds["initbench"], "≤ 0.33 (≥ 3× faster)"),
    ]


def peak_memory(depth: int, device: torch.device) -> int:
    """Peak memory of a fresh process running the forward experiment at ``depth`` (width and
    batch 512): resident set size on the CPU, the allocator's peak on CUDA.

    The CPU peak is /proc/self/status's VmHWM, the high-water mark of the child's own address
    space. ``getrusage``'s ru_maxrss survives exec on Linux, so a child started by this process
    would report this process's peak (over 1 GiB after the forward benchmark) at every depth.
    """
    measure_peak = (
        "torch.cuda.max_memory_allocated()"
        if device.type == "cuda"
        else "1024 * int(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
    )
    code = (
        "import sys, torch; sys.path.insert(0, 'bench'); import run; "
        f"device = torch.device('{device.type}'); "
        f"run.run_forward(run.forward_config({depth}, 512, 512, device), device); print({measure_peak})"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(output.split()[-1])


def memory_benchmark(repeats: int, device: torch.device) -> list[Result]:
    """Peak memory at depth 1000 against depth 100: the engine holds one layer at a time."""
    return [Result("forward peak memory, depth 1000 vs depth 100 (width, batch 512)", peak_memory(100, device) / 2**20, peak_memory(1000, device) / 2**20, "≤ 1.2", "MiB")]


#: The module backend's memory benchmark: mlps of these widths and batches, ``constructor`` init
#: (PyTorch's own draws, which only real modules make) so that they run on the module backend, this
#: many seeds. In the first the parameters are as large as a layer's activations; in the second the
#: activations are 64 times larger, so a backend that held them would grow 4× from depth 100 to 400.
MODULE_MEMORY_SHAPES = ({"width": 256, "batch": 512, "seeds": 4}, {"width": 64, "batch": 4096, "seeds": 4})


def module_peak_memory(depth: int, device: torch.device, shape: dict[str, int]) -> int:
    """Peak memory of a fresh process measuring a module-backed forward run at ``depth``
    and ``shape`` (one of :data:`MODULE_MEMORY_SHAPES`): VmHWM on the CPU, the allocator's peak on CUDA (see :func:`peak_memory`).

    The child calls only the experiment's ``measure`` (``ForwardExperiment().measure(context, runs)``),
    so the same code measures any version of initbench on ``PYTHONPATH``.
    """
    raw = {
        "name": "bench", "device": device.type, "seeds": shape["seeds"], "init": {"scheme": "constructor"},
        "model": {"depth": depth, "width": shape["width"], "activation": "relu"}, "input": {"batch": shape["batch"]},
    }  # fmt: skip
    measure_peak = (
        "torch.cuda.max_memory_allocated()"
        if device.type == "cuda"
        else "1024 * int(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
    )
    code = (
        "import torch; from initbench.config.loading import validate_config; from initbench.core.interfaces import SilentProgress; "
        "from initbench.experiments.base import RunContext, build_runs; from initbench.experiments.propagation import ForwardExperiment; "
        f"config = validate_config({raw!r}, 'bench'); device = torch.device('{device.type}'); "
        "context = RunContext(config=config, device=device, dtype=torch.float32, progress=SilentProgress()); "
        f"ForwardExperiment().measure(context, build_runs(config)); print({measure_peak})"
    )
    # -P: not the working directory first on sys.path, so PYTHONPATH (or the installed package) decides which initbench runs.
    output = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True).stdout
    return int(output.split()[-1])


def module_memory_benchmark(repeats: int, device: torch.device) -> list[Result]:
    """The module backend's peak memory at depth 400 against depth 100: its hooks keep no call's tensors,
    so what grows with depth is the stacked parameters (runs·width² a layer), not every layer's activations."""
    results = []
    for shape in MODULE_MEMORY_SHAPES:
        name = f"module backend peak memory, depth 400 vs 100 (mlp × {shape['width']}, batch {shape['batch']}, {shape['seeds']} seeds)"
        results.append(Result(name, module_peak_memory(100, device, shape) / 2**20, module_peak_memory(400, device, shape) / 2**20, "far below 4", "MiB"))
    return results


def startup_benchmark(repeats: int, device: torch.device) -> list[Result]:
    """``initbench --help`` against the interpreter's own start (``python -c pass``)."""
    # The console script beside this interpreter: a version manager's shim (pyenv) would add its own start-up.
    beside = Path(sys.executable).with_name("initbench")
    executable = str(beside) if beside.exists() else shutil.which("initbench") or "initbench"
    cpu = torch.device("cpu")
    seconds = median_seconds(
        {"bare": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), "help": lambda: subprocess.run([executable, "--help"], capture_output=True, check=True)},
        {"bare": repeats, "help": repeats},
        cpu,
    )
    return [Result("initbench --help wall time vs python -c pass", seconds["bare"], seconds["help"], "initbench < 0.5 s")]


def probe_benchmark(repeats: int, device: torch.device, runs: int = 16, batch: int = 128) -> list[Result]:
    """Probing ``runs`` seeds of a small user module (a 4-layer ReLU MLP, 7 leaf modules): initbench's
    module backend (all seeds under one vmap, each module's statistics over the stack at once)
    against the loop a user writes (per seed: forward hooks on the model, then the same
    statistics per module). Both record every leaf module's input and output."""
    from torch import nn

    from initbench.core.stats import layer_statistics
    from initbench.engines.modules import RowStatistics, StackedModules, observe

    def small_module() -> nn.Module:
        return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    constructor = build_from_spec(SCHEMES, "constructor")
    models = []
    for seed in range(runs):
        torch.manual_seed(seed)
        models.append(small_module().to(device))
    x = torch.randn(runs, batch, 32, generator=torch.Generator().manual_seed(0)).to(device)
    stack = StackedModules(models, [Run("constructor", seed, constructor, None) for seed in range(runs)], device)
    statistics = RowStatistics(build_from_spec(ACTIVATIONS, "relu"))

    def stacked() -> None:
        with torch.no_grad():
            observe(stack, x, statistics)  # each module's statistics, in its hook

    def loop() -> None:
        with torch.no_grad():
            for index, model in enumerate(models):
                calls: list[tuple[torch.Tensor, torch.Tensor]] = []
                handles = [module.register_forward_hook(lambda _m, inputs, output: calls.append((inputs[0], output))) for module in model]
                try:
                    model(x[index])
                finally:
                    for handle in handles:
                        handle.remove()
                for pre, post in calls:
                    layer_statistics(pre[None], post[None], None)

    seconds = median_seconds({"loop": loop, "stacked": stacked}, {"loop": repeats * 5, "stacked": repeats * 5}, device)
    return [Result(f"probe {runs} seeds of a 7-module MLP, batch {batch}: vmap vs a loop over the models", seconds["loop"], seconds["stacked"], "≥ 3× faster (ratio ≤ 0.33)")]


def lsuv_benchmark(repeats: int, device: torch.device, depth: int = 10, width: int = 256, batch: int = 256) -> list[Result]:
    """LSUV on ``depth`` Linear + tanh layers of ``width``, batch ``batch``: initbench's fit of S seeds
    stacked (orthonormal draws, stacking and the fit all timed) against the PyPI ``lsuv`` package
    (0.3.0) run on each seed's model in turn, both to tol 0.1 (initbench on Var, the package on its
    std). The package runs two whole forward passes a layer; initbench one pass of all seeds a
    measurement, cut short after the next layer, and one measurement a layer when a single rescale
    lands within tol (layers linear in their weight, no bias)."""
    from lsuv import lsuv_with_singlebatch  # pip install lsuv==0.3.0 (the test extra)
    from torch import nn

    from initbench.engines.lsuv_fit import fit_lsuv_runs
    from initbench.engines.modules import StackedModules, initialize
    from initbench.schemes.lsuv import LSUV

    def model() -> nn.Module:
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, width, bias=False), nn.Tanh()]
        return nn.Sequential(*layers).to(device)

    results = []
    for seeds in (1, 8):
        runs = [Run("lsuv", seed, LSUV(), None) for seed in range(seeds)]
        x = torch.randn(seeds, batch, width, generator=torch.Generator().manual_seed(0)).to(device)
        built = [model() for _ in runs]

        def stacked(runs: list[Run] = runs, x: torch.Tensor = x, built: list[nn.Module] = built) -> None:
            for net, run in zip(built, runs, strict=True):
                initialize(net, run, LSUV(), torch.Generator().manual_seed(run.seed))
            fit_lsuv_runs(StackedModules(built, runs, device), x)

        def package(x: torch.Tensor = x, built: list[nn.Module] = built) -> None:
            for index, net in enumerate(built):
                torch.manual_seed(index)
                lsuv_with_singlebatch(net, x[index], std_tol=0.1, max_attempts=10, do_orthonorm=True, verbose=False, device=device)

        seconds = median_seconds({"package": package, "initbench": stacked}, {"package": repeats, "initbench": repeats}, device)
        shape = f"{seeds} seed{'s' if seeds > 1 else ''}, {depth} Linear+tanh × {width}, batch {batch}"
        results.append(Result(f"lsuv ({shape}) vs the PyPI lsuv package per seed", seconds["package"], seconds["initbench"], "< 1"))
    return results


def busy_processes(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` processes that spin on a core each: the load of other users' jobs."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def threads_benchmark(repeats: int, device: torch.device) -> list[Result]:
    """Each workload at 1 torch thread against every core's thread (``torch.set_num_threads``,
    interleaved in this process): first on the machine as it is, then with one busy process per
    core started beside it. ``ratio`` < 1: more threads are faster. What ``signals.default_threads``
    is chosen from."""
    cores = os.cpu_count() or 1
    small, default = forward_config(20, 256, 256, device), forward_config(100, 256, 1024, device)
    train = validate_config(
        {"name": "bench", "device": device.type, "seeds": 16, "experiment": "train", "model": {"hidden": [10, 5], "activation": "relu"},
         "init": {"scheme": "he"}, "train": {"dataset": "circles", "steps": 100, "eval_every": 50}},
        "bench",
    )  # fmt: skip
    workloads = {
        "forward (20 layers × 256, batch 256, 4 schemes × 2 seeds)": lambda: run_forward(small, device),
        "forward (compare's net: 100 layers × 256, batch 1024, 4 schemes × 2 seeds)": lambda: run_forward(default, device),
        "train (16 circles runs × 100 steps)": lambda: run_train(train, device),
    }

    def at(threads: int, work: Callable[[], object]) -> Callable[[], object]:
        def timed_work() -> object:
            torch.set_num_threads(threads)
            return work()

        return timed_work

    results = []
    for load in (0, cores):
        busy = busy_processes(load)
        try:
            for name, work in workloads.items():
                seconds = median_seconds({"one": at(1, work), "all": at(cores, work)}, {"one": repeats, "all": repeats}, device)
                where = f"{load} busy processes beside it" if load else f"load average {os.getloadavg()[0]:.1f}"
                results.append(Result(f"{name}, {cores} threads vs 1 ({where})", seconds["one"], seconds["all"], "report"))
        finally:
            for process in busy:
                process.kill()
                process.wait()
    torch.set_num_threads(cores)
    return results


BENCHMARKS = {
    "forward": forward_benchmark, "train": train_benchmark, "memory": memory_benchmark, "module_memory": module_memory_benchmark,
    "startup": startup_benchmark, "probe": probe_benchmark,
    "lsuv": lsuv_benchmark,
    "threads": threads_benchmark,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run, of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    arguments = parser.parse_args()
    unknown = set(arguments.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    device = torch.device(arguments.device)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print(f"{'benchmark':<78} {'baseline':>10} {'initbench':>10} {'ratio':>7}  target")
    for name in arguments.names or BENCHMARKS:
        for result in BENCHMARKS[name](arguments.repeats, device):
            print(
                f"{result.name:<78} {result.baseline:>9.3f}{result.unit:<1} {result.initbench:>9.3f}{result.unit:<1} {result.ratio:>7.2f}  {result.target}"
                if result.unit == "s"
                else f"{result.name:<78} {result.baseline:>7.0f}{result.unit} {result.initbench:>7.0f}{result.unit} {result.ratio:>7.2f}  {result.target}",
                flush=True,
            )


if __name__ == "__main__":
    main()
