"""Running a sweep: a shard in this process (every point through the run lifecycle of
:mod:`initbench.runs.runner`), or a job array of shards through submitit."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import Progress, SilentProgress
from initbench.core.runtime import resolve_device, resolve_dtype
from initbench.core.threads import use_threads
from initbench.experiments.base import EXPERIMENTS, ExperimentResult, RunContext, build_runs
from initbench.runs.rundir import RESULTS_ROOT, RunDirectory, command_line, is_live_here, opening_meta
from initbench.runs.runner import Renderer, prepare, recorded, run_and_save, run_mode
from initbench.runs.sweepdir import SweepDirectory
from initbench.runs.sweeps.grid import Sweep
from initbench.runs.sweeps.plan import Shard, fits_in_memory, labels, stacks

LAUNCHERS = ("local", "submitit", "submitit-local")


def open_sweep_directory(sweep: Sweep, out: Path | None, root: Path = RESULTS_ROOT) -> SweepDirectory:
    """The sweep's directory with its index in place: created, or checked to hold this same sweep."""
    directory = SweepDirectory.create(out, sweep.name, root)
    text = sweep.index_text()
    if not directory.write_once(SweepDirectory.INDEX, text):
        existing = (directory.path / SweepDirectory.INDEX).read_text()
        if existing != text:
            try:
                stored = json.loads(existing)
            except ValueError:
                stored = {}
            differs = [key for key, value in sweep.index().items() if json.loads(json.dumps(value, default=str)) != stored.get(key)]
            raise InitbenchError(
                f"{directory.path} holds a different sweep: its {SweepDirectory.INDEX} differs in {', '.join(differs) or 'its text'}.",
                hint=f"Use a new --out for a new sweep; to resume this one, run `initbench sweep {directory.path}`.",
            )
    directory.write_once(SweepDirectory.BASE, yaml.safe_dump(sweep.base, sort_keys=False))
    return directory


def point_status(directory: SweepDirectory, name: str) -> str:
    """``missing`` (no directory), the status in its meta.json, or ``incomplete`` (no readable meta.json)."""
    path = directory.point_path(name)
    if not path.is_dir():
        return "missing"
    try:
        return str(json.loads((path / "meta.json").read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return "incomplete"


def live_elsewhere(directory: SweepDirectory, name: str) -> int | None:
    """The pid of a live process on this host that is running the point, if there is one.

    A ``running`` point whose lock nobody holds, on another host, cannot be checked further: it is
    taken for a killed job (a SLURM timeout kills without a chance to record ``interrupted``).
    """
    try:
        meta = json.loads((directory.point_path(name) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return int(meta["pid"]) if isinstance(meta, dict) and is_live_here(meta) else None


@dataclass
class ShardOutcome:
    """What one shard did, by point name."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def to_run(directory: SweepDirectory, name: str, log: Callable[[str], None], outcome: ShardOutcome) -> bool:
    """Whether to run point ``name`` now (its lock held), after moving an unfinished attempt aside."""
    status = point_status(directory, name)
    if status == "complete":
        outcome.skipped.append(name)
        log(f"Skipped {name}: already complete.")
        return False
    if status == "running" and (pid := live_elsewhere(directory, name)) is not None:
        outcome.busy.append(name)
        log(f"Skipped {name}: still running in process {pid} on this host.")
        return False
    if status != "missing":
        try:
            moved = directory.set_aside(name, status if status.isalpha() else "incomplete")
        except FileNotFoundError:  # moved by a process that does not take the lock (an older initbench)
            outcome.busy.append(name)
            log(f"Skipped {name}: another process took it over.")
            return False
        log(f"Moved the {status} attempt at {name} aside to {moved.name}; running it again.")
    return True


def run_stack(
    directory: SweepDirectory,
    sweep: Sweep,
    configs: Sequence[Config],
    group: list[int],
    progress: Progress,
    log: Callable[[str], None],
    outcome: ShardOutcome,
    render: Renderer,
    command: list[str],
    label: str = "",
) -> None:
    """Run one stack of points (or one point) through the run lifecycle, one directory per point;
    ``label`` (``[stack 2 of 5] ``) starts the line that says which points run.

    Each point is locked, then claimed and begun (config.yaml, a ``running`` meta.json) before the
    work; each ends ``complete``, ``interrupted`` or ``failed`` on its own. A failure stays with its
    point: if the shared pass fails, the points run again one at a time, so only the point that
    fails is recorded ``failed`` and its healthy stack-mates complete. An interrupt stops the shard.
    """
    experiment = EXPERIMENTS.get(configs[group[0]].experiment)()
    device = resolve_device(configs[group[0]].device)
    locks: list[tuple[str, int]] = []
    try:
        chosen: list[int] = []
        for index in group:
            name = sweep.points[index].name
            handle = directory.lock_point(name)
            if handle is None:
                outcome.busy.append(name)
                log(f"Skipped {name}: another process is running it.")
                continue
            locks.append((name, handle))
            if to_run(directory, name, log, outcome):
                chosen.append(index)
        names = [sweep.points[index].name for index in chosen]
        claimed: list[tuple[int, RunDirectory]] = []
        for index in chosen:
            name = sweep.points[index].name
            extra: dict[str, Any] = {"sweep": str(directory.path.resolve()), "point": name, **run_mode(configs[index])}
            if len(chosen) > 1:
                extra["stacked_with"] = [other for other in names if other != name]
            meta = opening_meta(str(device), configs[index].dtype, command, extra)
            run_directory = directory.claim_point(name, configs[index].to_yaml(), meta)
            if run_directory is None:  # made by a process that does not take the lock (an older initbench)
                outcome.busy.append(name)
                log(f"Skipped {name}: another process claimed it first.")
                continue
            claimed.append((index, run_directory))
        if not claimed:
            return
        names = [sweep.points[index].name for index, _ in claimed]
        log(f"{label}Running {', '.join(names)}" + (f" (stacked: {len(names)} points in one pass)" if len(names) > 1 else "") + ".")
        with recorded([run_directory for _, run_directory in claimed]):
            run_claimed(experiment, [(sweep.points[index].name, configs[index], run_directory) for index, run_directory in claimed],
                        device, progress, log, outcome, render)
    finally:
        for name, handle in locks:
            directory.unlock_point(name, handle)


def run_claimed(
    experiment: Any,
    claimed: list[tuple[str, Config, RunDirectory]],
    device: Any,
    progress: Progress,
    log: Callable[[str], None],
    outcome: ShardOutcome,
    render: Renderer,
) -> None:
    """Run, save and render claimed points: stacked in one pass when there are several, else alone."""
    def context(config: Config) -> RunContext:
        return RunContext(config=config, device=device, dtype=resolve_dtype(config.dtype), progress=progress)

    def finish_point(name: str, config: Config, run_directory: RunDirectory, work: Callable[[], ExperimentResult]) -> None:
        try:
            run_and_save(run_directory, work, run_directory.save, render)
        except Exception as error:  # recorded in its meta.json; the other points go on
            outcome.failed.append(name)
            log(f"Failed {name}: {type(error).__name__}: {error}")
        else:
            outcome.ran.append(name)

    if len(claimed) > 1:
        first = claimed[0][1]
        try:
            record = experiment.measure(context(first), [run for _, config, _ in claimed for run in build_runs(config)])
        except Exception as error:
            log(f"The stacked pass failed ({type(error).__name__}: {error}); running its points one at a time.")
        else:
            for name, config, run_directory in claimed:
                finish_point(name, config, run_directory, lambda config=config: experiment.analyse(config, record.subset(labels(config))))
            return
    for name, config, run_directory in claimed:
        finish_point(name, config, run_directory, lambda config=config: experiment.run(context(config)))


def run_shard(
    path: Path,
    render: Renderer,
    shard: Shard = Shard(),
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    command: list[str] | None = None,
    points: Progress | None = None,
) -> ShardOutcome:
    """Run shard ``shard`` of the sweep in directory ``path``: the one function every launcher calls;
    ``render`` writes each point's figures and summary.md (:data:`initbench.runs.runner.Renderer`).

    Everything is read from the directory's ``sweep.json``, so a job on another machine needs only
    the path. Every point of the shard is checked (device, memory, dataset) before any runs. Points
    already complete are skipped; the rest run in stacks. A point that fails is recorded (its
    meta.json says ``failed``) and the shard goes on; an interrupt stops it. ``progress`` follows
    each stack's experiment, ``points`` the shard's points, stack by stack.
    """
    directory = SweepDirectory(path)
    sweep = Sweep.load(path)
    configs = sweep.configs()
    selected = shard.select(len(sweep.points))
    for index in selected:
        prepare(configs[index])  # everything a run checks before it claims its directory
    outcome = ShardOutcome()
    if not selected:
        log(f"Shard {shard} has no points: the sweep has {len(sweep.points)}.")
        return outcome
    todo = [index for index in selected if point_status(directory, sweep.points[index].name) != "complete"]
    waiting = set(todo)
    for index in selected:
        if index not in waiting:
            outcome.skipped.append(sweep.points[index].name)
            log(f"Skipped {sweep.points[index].name}: already complete.")
    parts = [
        part
        for group in stacks(configs, todo)
        for part in ([group] if len(group) == 1 or fits_in_memory(configs, group) else [[index] for index in group])
    ]
    points = points or SilentProgress()
    points.start(f"{len(todo)} points", total=len(todo))
    for number, part in enumerate(parts, start=1):
        label = f"[stack {number} of {len(parts)}] " if len(parts) > 1 else ""
        run_stack(directory, sweep, configs, part, progress or SilentProgress(), log, outcome, render, command or command_line(), label)
        points.advance(len(part))
    return outcome


def shard_job(path: str, index: int, count: int, command: list[str], render: Renderer, threads: int | None = None) -> dict[str, list[str]]:
    """One array job of ``--launcher submitit``: :func:`run_shard` with ``threads`` torch threads
    (None: the default on the job's machine), failing the job if a point failed."""
    use_threads(threads)
    outcome = run_shard(Path(path), render, Shard(index, count), command=command)
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} points failed: {', '.join(outcome.failed)}; their meta.json has the error.")
    return {"ran": outcome.ran, "skipped": outcome.skipped, "busy": outcome.busy}


def require_submitit() -> Any:
    """The submitit module, imported only when a sweep is submitted; its absence is a user error."""
    try:
        # Deferred for start-up time: loads submitit.
        import submitit
    except ImportError:
        raise InitbenchError(
            "--launcher submitit needs the submitit package.", hint='Install it with: pip install "initbench[cluster]"'
        ) from None
    return submitit


def submit(
    path: Path,
    jobs: int,
    render: Renderer,
    cluster: str | None = None,
    partition: str | None = None,
    timeout_min: int | None = None,
    gpus: int | None = None,
    command: list[str] | None = None,
    threads: int | None = None,
) -> list[Any]:
    """Submit the sweep in ``path`` as one job array of ``jobs`` shards through submitit.

    Each array task runs :func:`shard_job` (shard i of ``jobs``, ``threads`` torch threads), the
    same code as ``--shard``, with ``render`` (a module-level function: submitit pickles it by name).
    ``cluster`` picks submitit's executor: None detects SLURM (and falls back to local processes
    where there is none), ``"local"`` always runs local processes. Logs go to ``path/submitit``.
    Returns the submitit jobs.
    """
    submitit = require_submitit()
    path = path.resolve()  # jobs may start in another working directory
    executor = submitit.AutoExecutor(folder=path / "submitit", cluster=cluster)
    parameters: dict[str, Any] = {
        "name": f"initbench-{path.name}",
        "timeout_min": timeout_min,
        "gpus_per_node": gpus,
        "slurm_partition": partition,
    }
    executor.update_parameters(**{key: value for key, value in parameters.items() if value is not None})
    every = command or command_line()
    return executor.map_array(shard_job, [str(path)] * jobs, range(jobs), [jobs] * jobs, [every] * jobs, [render] * jobs, [threads] * jobs)
