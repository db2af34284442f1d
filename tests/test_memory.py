"""Memory is bounded before anything is allocated: the estimates against measured peaks, and
refusals of what cannot fit (exit 2, a clear message, fast, nothing written)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from initbench.engines.stacked import propagation_memory_estimate
from initbench.engines.training import training_memory_estimate

REPO = Path(__file__).resolve().parent.parent

#: A subprocess measures the resident memory each case's measure pass adds (VmHWM after
#: resetting it through /proc/self/clear_refs, minus VmRSS before), after a warm-up pass, so
#: torch's kernels and scikit-learn's modules are already loaded.
PEAK_SCRIPT = r"""
import json, sys
import torch
from initbench.config.loading import load_config
from initbench.core.interfaces import SilentProgress
from initbench.experiments.base import EXPERIMENTS, RunContext, build_runs

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

def measure(raw, overrides=()):
    config = load_config(None, list(overrides), base=raw)
    context = RunContext(config, torch.device("cpu"), torch.float32, SilentProgress())
    EXPERIMENTS.get(config.experiment)().measure(context, build_runs(config))

peaks = []
for raw, warm_up in json.loads(sys.argv[1]):
    measure(raw, warm_up)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = status("VmRSS:")
    measure(raw)
    peaks.append(status("VmHWM:") - before)
print(json.dumps(peaks))
"""

FORWARD = {"device": "cpu", "seeds": 2, "model": {"depth": 3, "width": 1024}, "input": {"batch": 2048}, "init": {"scheme": "he"}}
GRADIENTS = {"device": "cpu", "experiment": "gradients", "seeds": 2, "model": {"depth": 6, "width": 512}, "input": {"batch": 1024}, "init": {"scheme": "he"}}
TRAIN = {
    "device": "cpu", "experiment": "train", "seeds": 2, "model": {"hidden": [256, 256]}, "init": {"scheme": "he"},
    "train": {"dataset": "moons", "steps": 3, "eval_every": 1},
}


ESTIMATES = {
    "forward": (FORWARD, ["model.depth=1"], lambda: sum(vars(propagation_memory_estimate(2, 2048, 1024, 3, False, torch.float32)).values())),
    "gradients": (GRADIENTS, ["model.depth=1"], lambda: sum(vars(propagation_memory_estimate(2, 1024, 512, 6, True, torch.float32)).values())),
    # moons: 2 features, 300 train and 100 test rows, one logit; 3 steps evaluated at 0, 1, 2, 3.
    "train": (TRAIN, ["train.steps=1"], lambda: training_memory_estimate(2, [2, 256, 256, 1], 300, 100, None, "sgd", 0.0, 4, 200**2, torch.float32)),
}


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs to reset the peak")
@pytest.mark.parametrize("case", list(ESTIMATES))
def test_estimates_bound_the_measured_peak_memory_within_a_factor_of_3(case: str) -> None:
    """One subprocess per case: memory a previous case freed would be reused without showing in the peak."""
    raw, warm_up, estimate = ESTIMATES[case]
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, json.dumps([(raw, warm_up)])], capture_output=True, text=True, check=True, timeout=300, cwd=REPO
    )
    (peak,) = json.loads(result.stdout)
    print(f"{case}: measured {peak / 2**20:.0f} MiB, estimated {estimate() / 2**20:.0f} MiB")
    assert peak <= estimate() <= 3 * peak


def test_the_gradients_estimate_grows_with_depth_and_the_forward_one_only_by_its_records() -> None:
    shallow, deep = (propagation_memory_estimate(1, 64, 64, depth, True, torch.float32) for depth in (10, 1000))
    assert deep.device - shallow.device == 990 * 64 * 64 * 4  # one kept pre-activation per layer
    forward_shallow, forward_deep = (propagation_memory_estimate(1, 64, 64, depth, False, torch.float32) for depth in (10, 1000))
    assert forward_deep.device == forward_shallow.device and forward_deep.host > forward_shallow.host


def test_the_training_estimate_counts_every_pass() -> None:
    """The largest pass sets the peak: the 40 000-point decision-boundary grid, not the 300-row batch."""
    without_grid = training_memory_estimate(1, [2, 1000, 1], 300, 100, None, "sgd", 0.0, 2, 0, torch.float32)
    with_grid = training_memory_estimate(1, [2, 1000, 1], 300, 100, None, "sgd", 0.0, 2, 40_000, torch.float32)
    per_row = (2 + 1000 + 1000 + 1 + 3 * 1000) * 4
    assert with_grid - without_grid == (40_000 - 300) * per_row
    adam = training_memory_estimate(1, [2, 1000, 1], 300, 100, None, "adam", 0.0, 2, 0, torch.float32)
    assert adam - without_grid == 2 * (2 * 1000 + 1000 + 1000 * 1 + 1) * 4  # Adam's two moment buffers


HUGE = [
    (("run", "{tiny}", "model.width=10000000"), "needs about"),
    (("run", "{tiny}", "input.batch=100000000000"), "needs about"),
    (("run", "{tiny}", "seeds=1000000000000"), "needs about"),
    (("run", "{tiny}", "model.depth=1000000", "seeds=100000"), "needs about"),
    (("run", "{tiny}", "experiment=gradients", "model.depth=1000000", "model.width=1000"), "needs about"),
    (("run", "{tiny}", "model.depth=100000000000000000000"), "model.depth"),
    (("compare", "he", "--experiment", "train", "--width", "100000", "--depth", "3"), "needs about"),
    (("compare", "he", "--experiment", "train", "--seeds", "100000000000000"), "needs about"),
    (("compare", "he", "--experiment", "train", "--steps", "100000000000000000"), "needs about"),
    (("compare", "he", "--experiment", "train", "--dataset", "circles:n_train=100000000000"), "Dataset 'circles:n_train=100000000000' needs about"),
    (("compare", "he", "--experiment", "train", "--dataset", "teacher:hidden=10000000000"), "needs about"),
    (("compare", "he", "--experiment", "train", "--dataset", "{npz}"), "needs about"),
    (("phase", "--sw2", "0:1:100000000000"), "at most 10000 points"),
    (("phase", "--sw2", "0:1:200", "--sb2", "0:1:200"), "200 × 200 = 40000 points"),
    (("phase", "--measure", "--width", "1000000"), "needs about"),
    (("phase", "--measure", "--depth", "100000000000000000000"), "--depth"),
]


@pytest.mark.parametrize(("args", "message"), HUGE, ids=lambda value: " ".join(value) if isinstance(value, tuple) else None)
def test_what_does_not_fit_is_refused_at_once(cli, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("device: cpu\nmodel: {depth: 2, width: 4}\ninit: {scheme: he}\ninput: {batch: 8}\n")
    npz = tmp_path / "huge.npz"
    with zipfile.ZipFile(npz, "w") as archive:  # headers claiming 8 TB, holding nothing
        for name, shape in (("X", (10**6, 10**6)), ("y", (10**6,))):
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": shape})
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = cli(*(arg.replace("{tiny}", str(tiny)).replace("{npz}", str(npz)) for arg in args), "--out", tmp_path / "out")
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert elapsed < 20, "a refusal must not compute first"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 200 * 1024, f"a refusal allocated {grown_kib} KiB"
