"""Results are never mixed, lost or mislabelled: races, signals, full disks, one-shot inputs, resume.

Races really race (processes released together by a barrier), signals are real signals sent to a
real ``initbench`` process mid-run, and faults are injected at every write a run makes. Each test
prints what it tried (``reliability: ...``); the README's reliability section quotes those lines
(``pytest -s tests/test_reliability.py | grep reliability:``).
"""

from __future__ import annotations

import csv
import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from initbench.config.loading import validate_config
from initbench.core import signals
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import SilentProgress
from initbench.outputs.run_report import render_into
from initbench.runs import rundir
from initbench.runs.rundir import RunDirectory
from initbench.runs.runner import CHECKPOINT, execute, resume
from tests.conftest import REPO, write_config

FORWARD = {
    "name": "tiny", "device": "cpu", "seeds": 2,
    "model": {"depth": 3, "width": 8, "activation": "tanh"}, "init": {"schemes": ["xavier_normal", "he"]}, "input": {"batch": 8},
}  # fmt: skip
TRAIN = {
    "name": "tiny_train", "experiment": "train", "device": "cpu", "seeds": 2,
    "model": {"hidden": [6, 4], "activation": "relu", "bias": True}, "init": {"schemes": ["zeros", "normal:std=10", "he"]},
    "train": {"dataset": "circles:n_train=64,n_test=32", "steps": 40, "lr": 0.05, "optimizer": "adam", "batch_size": 16, "eval_every": 10},
}  # fmt: skip
ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "200"}


def initbench(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "initbench", *map(str, args)], env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def files_parse(directory: Path) -> list[str]:
    """The files of a run directory, each read by the parser of its kind (which raises if it is cut short)."""
    names = []
    for path in sorted(directory.iterdir()):
        assert not path.name.startswith("."), f"temporary file left behind: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            validate_config(yaml.safe_load(path.read_text()), str(path))
        elif path.suffix == ".csv":
            rows = list(csv.reader(path.open()))
            assert rows and all(len(row) == len(rows[0]) for row in rows), path
        elif path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG") and path.read_bytes().endswith(b"IEND\xaeB`\x82"), path
        names.append(path.name)
    return names


def status(directory: Path) -> str:
    return json.loads((directory / "meta.json").read_text())["status"]


# --- Races --------------------------------------------------------------------------------------


def claim_race(out: str, barrier: Any, rounds: int, results: Any) -> None:
    """One racer: each round, wait for the others, then claim ``out``-<round> with its own pid."""
    for round_ in range(rounds):
        barrier.wait()
        meta = {"status": "running", "pid": os.getpid()}
        claimed = RunDirectory.claim(Path(f"{out}-{round_}"), f"name: racer-{os.getpid()}\n", meta)
        results.put((round_, os.getpid() if claimed is not None else None))


def test_exactly_one_of_many_processes_claims_an_out(tmp_path: Path) -> None:
    """Racers released together by a barrier claim the same new (or empty) --out: exactly one wins,
    and the directory holds the winner's config.yaml and meta.json, never a mix."""
    racers, rounds = 6, 25
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(racers), context.Queue()
    for round_ in range(0, rounds, 2):
        (tmp_path / f"out-{round_}").mkdir()  # every other round races for an existing empty directory
    processes = [context.Process(target=claim_race, args=(str(tmp_path / "out"), barrier, rounds, results)) for _ in range(racers)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(racers * rounds)]
    for process in processes:
        process.join(timeout=60)
    for round_ in range(rounds):
        winners = [pid for number, pid in outcomes if number == round_ and pid is not None]
        assert len(winners) == 1, f"round {round_}: {len(winners)} winners"
        directory = tmp_path / f"out-{round_}"
        assert sorted(path.name for path in directory.iterdir()) == ["config.yaml", "meta.json"]
        assert json.loads((directory / "meta.json").read_text())["pid"] == winners[0]
        assert (directory / "config.yaml").read_text() == f"name: racer-{winners[0]}\n"
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")], "staging folders left behind"
    print(f"reliability: claim races: {rounds} rounds x {racers} processes, {rounds} winners, 0 mixed directories")


def test_concurrent_runs_given_one_out_leave_one_intact_run(tmp_path: Path) -> None:
    """Real ``initbench run`` processes with different configs and the same --out: one exits 0 and
    the directory is all its run; the others exit 2 saying the directory is taken."""
    config = write_config(tmp_path / "tiny.yaml", yaml.safe_dump(FORWARD))
    out = tmp_path / "shared"
    processes = [initbench("run", config, f"name=racer{number}", "--out", out, "--quiet") for number in range(4)]
    finished = [(process.wait(timeout=300), *process.communicate()) for process in processes]
    codes = sorted(code for code, _, _ in finished)
    assert codes == [0, 2, 2, 2], finished
    winner = next(number for number, (code, _, _) in enumerate(finished) if code == 0)
    assert all("already exists and is not empty" in err for code, _, err in finished if code == 2)
    assert yaml.safe_load((out / "config.yaml").read_text())["name"] == f"racer{winner}"
    assert f"name=racer{winner}" in json.loads((out / "meta.json").read_text())["command"]
    assert status(out) == "complete" and "layer_stats.csv" in files_parse(out)


def sweep_racer(path: str, barrier: Any, results: Any) -> None:
    from initbench.runs.sweeps import run_shard

    barrier.wait()
    outcome = run_shard(Path(path), render_into, log=lambda message: None)
    results.put((outcome.ran, outcome.busy, outcome.failed))


def test_sweeps_racing_on_one_directory_run_each_point_once(tmp_path: Path) -> None:
    """Sweeps started together on one sweep directory: every point runs exactly once, and no sweep
    moves aside a point another has claimed (no ``.incomplete-n`` or ``.running-n`` attempts)."""
    from initbench.runs.sweeps import Sweep, open_sweep_directory

    base = write_config(tmp_path / "base.yaml", yaml.safe_dump({**FORWARD, "init": {"scheme": "he"}}))
    sweep = Sweep.from_config(base, ["model.depth=2,3,4", "init.scheme=he,xavier_normal"])
    out = open_sweep_directory(sweep, tmp_path / "sw").path
    racers, rounds = 3, 2
    context = multiprocessing.get_context("spawn")
    for round_ in range(rounds):
        if round_:  # the same sweep again, every point unfinished: the racers must also agree on moving attempts aside
            for point in sweep.points:
                meta_path = out / "points" / point.name / "meta.json"
                meta = json.loads(meta_path.read_text())
                meta_path.write_text(json.dumps({**meta, "status": "failed"}))
        barrier, results = context.Barrier(racers), context.Queue()
        processes = [context.Process(target=sweep_racer, args=(str(out), barrier, results)) for _ in range(racers)]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=600) for _ in range(racers)]
        for process in processes:
            process.join(timeout=60)
        ran = [name for outcome in outcomes for name in outcome[0]]
        assert sorted(ran) == sorted(point.name for point in sweep.points), "each point ran exactly once"
        assert not any(outcome[2] for outcome in outcomes)
        on_disk = sorted(path.name for path in (out / "points").iterdir())
        asides = [name for name in on_disk if "." in name]
        assert len(asides) == round_ * len(sweep.points) and all(".failed-" in name for name in asides), on_disk
        assert all(status(out / "points" / point.name) == "complete" for point in sweep.points)
    print(f"reliability: sweep races: {rounds} rounds x {racers} sweeps on {len(sweep.points)} points, each point run once per round")


# --- Signals ------------------------------------------------------------------------------------


def wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def running(directory: Path) -> bool:
    try:
        return status(directory) == "running"
    except (OSError, ValueError):
        return False


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_records_interrupted_and_exits_128_plus_its_number(tmp_path: Path, signum: int, code: int) -> None:
    """SIGTERM (timeout, docker stop, SLURM) is handled as Ctrl-C: exit 143 (130 for SIGINT), meta.json
    ``interrupted``, every file whole, no traceback; training keeps its checkpoint to resume from."""
    config = write_config(tmp_path / "train.yaml", yaml.safe_dump({**TRAIN, "train": {**TRAIN["train"], "steps": 100000}}))
    out = tmp_path / "run"
    process = initbench("run", config, "--out", out, "--quiet")
    wait_for(lambda: (out / CHECKPOINT).exists() or process.poll() is not None, 300)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "Interrupted." in stderr
    assert status(out) == "interrupted"
    assert CHECKPOINT in files_parse(out)
    print(f"reliability: signal {signal.Signals(signum).name} mid-run: exit {process.returncode}, meta.json interrupted")


def handles_sigterm(pid: int) -> bool:
    """Whether the process has installed its SIGTERM handler: initbench's code is running."""
    caught = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see when the handlers are installed")
def test_early_signals_exit_quietly(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM from the moment initbench's code runs, while it is still importing typer and
    torch: exit 130 or 143 and no traceback. (Before that, Python's own start-up is not ours to handle.)"""
    config = write_config(tmp_path / "tiny.yaml", yaml.safe_dump(FORWARD))
    sent = 0
    for delay in (0.0, 0.2, 1.0):
        for signum in (signal.SIGINT, signal.SIGTERM):
            out = tmp_path / f"early-{delay}-{signum}"
            process = initbench("run", config, "--out", out, "--quiet")
            wait_for(lambda: process.poll() is not None or handles_sigterm(process.pid), 60)
            time.sleep(delay)
            process.send_signal(signum)
            sent += 1
            _, stderr = process.communicate(timeout=120)
            assert "Traceback" not in stderr, stderr
            assert process.returncode in (0, 128 + signum), (delay, signum, process.returncode, stderr)
            if out.exists():
                assert status(out) in ("interrupted", "complete")
                files_parse(out)
    print(f"reliability: early signals: {sent} sent during start-up, no traceback, no directory left running")


# --- Faults while running and while recording ----------------------------------------------------


class Fault(Exception):
    pass


def inject(monkeypatch: pytest.MonkeyPatch, at: int, fault: str) -> list[int]:
    """Make the ``at``-th file write (0-based) of this process fail with ``fault``, and for a full
    disk every write after it; returns the write counter."""
    count = [0]
    original = rundir._write_all

    def write(handle: int, data: bytes) -> None:
        number = count[0]
        count[0] += 1
        if fault == "interrupt" and number == at:
            os.close(handle)
            raise KeyboardInterrupt
        if fault == "sigterm" and number == at:
            os.kill(os.getpid(), signal.SIGTERM)  # the real handler turns it into Interrupted at the next bytecode
        if fault.startswith("enospc") and number >= at:
            os.close(handle)
            raise OSError(errno.ENOSPC, "No space left on device")
        original(handle, data)

    monkeypatch.setattr(rundir, "_write_all", write)
    if fault == "enospc-everywhere":  # not even rewriting meta.json in place works
        monkeypatch.setattr(rundir, "_overwrite_in_place", lambda path, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    return count


def writes_of(config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    with monkeypatch.context() as patch:
        count = inject(patch, -1, "none")
        execute(validate_config(config, "test"), tmp_path / "count", SilentProgress(), render_into)
    return count[0]


ALL_FAULTS = ("enospc", "enospc-everywhere", "interrupt", "sigterm")


@pytest.mark.parametrize(("config", "faults"), [(FORWARD, ALL_FAULTS), (TRAIN, ("enospc", "sigterm"))], ids=["forward", "train"])
def test_a_fault_at_any_write_never_leaves_running_nor_a_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any], faults: tuple[str, ...]
) -> None:
    """At every write a run makes (claim, checkpoints, tables, figures, meta.json), inject a full
    disk (from there on), a full disk where even the in-place rewrite fails, Ctrl-C, or a real
    SIGTERM (training, with more writes: a full disk and SIGTERM). Afterwards meta.json never says
    ``running`` (or is gone, when nothing could be written), says ``complete`` only when every
    result was written, and every file left parses whole."""
    previous = {signum: signal.getsignal(signum) for signum in signals.HANDLED}
    signals.install()
    try:
        total = writes_of(config, tmp_path, monkeypatch)
        cases = 0
        for at in range(total):
            for fault in faults:
                out = tmp_path / f"{fault}-{at}"
                with monkeypatch.context() as patch:
                    inject(patch, at, fault)
                    try:
                        execute(validate_config(config, "test"), out, SilentProgress(), render_into)
                        raised = None
                    except (OSError, KeyboardInterrupt, InitbenchError) as error:  # a full disk at the claim is the user's to fix
                        raised = error
                cases += 1
                assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")], "staging folder left behind"
                if not out.exists():
                    assert raised is not None and at < 2, "only a failed claim leaves no directory"
                    continue
                names = files_parse(out)
                if "meta.json" not in names:
                    assert fault == "enospc-everywhere" and isinstance(raised, (OSError, InitbenchError))
                    continue
                recorded = status(out)
                assert recorded != "running", (fault, at)
                if raised is None:
                    assert recorded == "complete"
                elif recorded == "complete":  # a signal during the last write waits for it, then stops the process
                    assert fault == "sigterm" and at == total - 1 and isinstance(raised, signals.Interrupted)
                elif isinstance(raised, KeyboardInterrupt):
                    assert recorded == "interrupted"
                if raised is None:
                    assert CHECKPOINT not in names
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(f"reliability: fault injection ({config['name']}): {cases} cases over {total} writes, none left running")


# --- Inputs read once -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("run", "/dev/stdin"), ("compare", "he", "--config", "/dev/stdin"), ("sweep", "/dev/stdin", "seeds=1,2")],
    ids=["run", "compare", "sweep"],
)
def test_a_config_that_can_be_read_once_is_used(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A config on a pipe: the run uses it (before, the second read got nothing and defaults ran)."""
    out = tmp_path / "out"
    process = initbench(*args, "--out", out, "--quiet", stdin=subprocess.PIPE)
    _, stderr = process.communicate(yaml.safe_dump({**FORWARD, "name": "piped"}), timeout=300)
    assert process.returncode == 0, stderr
    written = next(out.rglob("config.yaml"))
    assert yaml.safe_load(written.read_text())["name"] == "piped"
    assert yaml.safe_load(written.read_text())["model"]["depth"] == FORWARD["model"]["depth"]


# --- Resume -------------------------------------------------------------------------------------


class InterruptAt(SilentProgress):
    """Progress that delivers SIGTERM's interrupt once ``at`` steps have been done."""

    def __init__(self, at: int) -> None:
        self.at, self.done = at, 0

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if self.done >= self.at:
            raise signals.Interrupted(signal.SIGTERM)


def outputs(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.name != "meta.json"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_interrupted_training_run_resumes_to_the_uninterrupted_numbers(tmp_path: Path, dtype: str) -> None:
    """Interrupted at several steps (before, at and between evaluations, and twice in a row), then
    resumed: train_metrics.csv, summary.json, summary.md and the figures equal an uninterrupted run's
    byte for byte."""
    config = validate_config({**TRAIN, "dtype": dtype}, "test")
    reference, _ = execute(config, tmp_path / "reference", SilentProgress(), render_into)
    expected = outputs(reference.path)
    schedules = [(3,), (10,), (39,), (12, 25)]
    for schedule in schedules:
        out = tmp_path / "-".join(map(str, schedule))
        with pytest.raises(signals.Interrupted):
            execute(config, out, InterruptAt(schedule[0]), render_into)
        for at in schedule[1:]:
            with pytest.raises(signals.Interrupted):
                resume(out, InterruptAt(at), render_into)
        assert status(out) == "interrupted" and (out / CHECKPOINT).exists()
        directory, _ = resume(out, SilentProgress(), render_into)
        assert status(out) == "complete"
        assert outputs(directory.path) == expected, schedule
        assert len(json.loads((out / "meta.json").read_text())["attempts"]) == len(schedule)
    print(f"reliability: resume equality ({dtype}): {len(schedules)} interrupted runs resumed, all byte-identical to the uninterrupted run")


def test_resume_refuses_what_it_cannot_resume(cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml", yaml.safe_dump(FORWARD))
    assert cli("run", config, "--out", tmp_path / "done").exit_code == 0
    done = cli("run", "--resume", tmp_path / "done")
    assert done.exit_code == 2 and "is complete; there is nothing to resume" in done.stderr
    mixed = cli("run", config, "--resume", tmp_path / "done")
    assert mixed.exit_code == 2 and "--resume takes only the run directory" in mixed.stderr
    missing = cli("run", "--resume", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    nothing = cli("run")
    assert nothing.exit_code == 2 and "Give a config to run, or --resume DIR" in nothing.stderr


def test_a_resumed_forward_run_reruns_in_place(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from initbench.experiments import propagation

    config = write_config(tmp_path / "tiny.yaml", yaml.safe_dump(FORWARD))
    assert cli("run", config, "--out", tmp_path / "reference").exit_code == 0
    original = propagation.measure_net

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("lost the GPU")

    monkeypatch.setattr(propagation, "measure_net", fail)
    assert cli("run", config, "--out", tmp_path / "again").exit_code == 1
    monkeypatch.setattr(propagation, "measure_net", original)
    resumed = cli("run", "--resume", tmp_path / "again")
    assert resumed.exit_code == 0, resumed.output
    meta = json.loads((tmp_path / "again" / "meta.json").read_text())
    assert meta["status"] == "complete" and "error" not in meta
    assert meta["attempts"][0]["status"] == "failed" and "lost the GPU" in meta["attempts"][0]["error"]
    assert outputs(tmp_path / "again") == outputs(tmp_path / "reference")


# --- Sweep failures stay with their point ---------------------------------------------------------


def test_a_point_that_fails_in_a_stack_fails_alone(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stack of two points where one (scheme he) fails in the shared pass and in analysis: the
    healthy point completes, equal to its run alone, and stays complete on every rerun."""
    from initbench.experiments import propagation

    base = write_config(tmp_path / "base.yaml", yaml.safe_dump({**FORWARD, "init": {"scheme": "he"}}))
    out = tmp_path / "sw"
    original = propagation.measure_net

    def fail_for_he(net, *args: Any, **kwargs: Any) -> Any:
        if any(run.label == "he" for run in net.runs):
            raise RuntimeError("he is broken")
        return original(net, *args, **kwargs)

    monkeypatch.setattr(propagation, "measure_net", fail_for_he)
    for attempt in range(2):
        result = cli("sweep", base, "init.scheme=xavier_normal,he", "--out", out)
        assert result.exit_code == 1
        assert json.loads((out / "points" / "scheme-he" / "meta.json").read_text())["error"] == "RuntimeError: he is broken"
        assert status(out / "points" / "scheme-xavier-normal") == "complete"
        assert ("1 ran" if attempt == 0 else "0 ran, 1 already complete") in result.stdout
    alone = cli("run", base, "init.scheme=xavier_normal", "--out", tmp_path / "alone")
    assert alone.exit_code == 0
    point = outputs(out / "points" / "scheme-xavier-normal")
    assert point["layer_stats.csv"] == outputs(tmp_path / "alone")["layer_stats.csv"]

    monkeypatch.setattr(propagation, "measure_net", original)
    analyse = propagation.Propagation.analyse

    def analyse_fails_for_he(self, config, record):  # the shared pass works; one point's analysis fails
        if config.init.scheme == "he":
            raise ValueError("cannot summarise he")
        return analyse(self, config, record)

    monkeypatch.setattr(propagation.Propagation, "analyse", analyse_fails_for_he)
    second = tmp_path / "sw2"
    result = cli("sweep", base, "init.scheme=xavier_normal,he", "--out", second)
    assert result.exit_code == 1 and "Failed scheme-he: ValueError: cannot summarise he" in result.stdout
    assert status(second / "points" / "scheme-xavier-normal") == "complete"
    assert status(second / "points" / "scheme-he") == "failed"
