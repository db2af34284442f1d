"""The ``sweep`` command: a grid of configs, run here (whole or one ``--shard``) or submitted as a
job array, into one sweep directory that shards and reruns share (:mod:`initbench.runs.sweeps`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from initbench.cli.app import EXIT_FAILURE, DeviceOption, QuietOption, SeedsOption, ThreadsOption, progress_shown, reported_errors, say
from initbench.core.errors import InitbenchError
from initbench.core.threads import use_threads
from initbench.outputs.console import RichProgress, stderr, stdout

if TYPE_CHECKING:
    from initbench.config.run import Config
    from initbench.runs.sweeps import Shard, Sweep


SweepOutOption = Annotated[
    Path | None, typer.Option("--out", help="The sweep directory, shared by shards and reruns. Default: results/<name>-sweep-<time>/.")
]


LauncherOption = Annotated[
    str,
    typer.Option(
        "--launcher", help="local (this process), submitit (a job array: SLURM where there is one) or submitit-local (local processes)."
    ),
]


def sweep(
    config: Annotated[Path, typer.Argument(help="A YAML config (its sweep: section gives axes), or a sweep directory to resume.")],
    axes: Annotated[
        list[str] | None, typer.Argument(help="Axes KEY=V1,V2,... (';' between values that contain commas).", show_default=False)
    ] = None,
    out: SweepOutOption = None,
    shard: Annotated[str | None, typer.Option("--shard", help="Run only shard I/N: points I, I+N, I+2N, ... (0 ≤ I < N).")] = None,
    launcher: LauncherOption = "local",
    jobs: Annotated[int | None, typer.Option("--jobs", help="submitit: array size, one shard each (default: one per stack).", min=1)] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="submitit: the SLURM partition.")] = None,
    timeout_min: Annotated[int | None, typer.Option("--timeout-min", help="submitit: each job's time limit in minutes.", min=1)] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="submitit: GPUs per job.", min=0)] = None,
    wait: Annotated[bool, typer.Option("--wait", help="submitit: wait for the jobs and say how they ended.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the points, their stacks and status; run and write nothing.")] = False,
    device: DeviceOption = None,
    seeds: SeedsOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run a grid of configs: one run directory per point, in one sweep directory shards can share.

    [bold]Examples[/bold]

      initbench sweep configs/relu_kaiming.yaml model.depth=10,30,100 init.scheme=xavier,he --out results/depth

      initbench sweep base.yaml model.activation=tanh,relu --out /shared/sw --shard $SLURM_ARRAY_TASK_ID/8

      initbench sweep base.yaml model.depth=10,100 --launcher submitit --partition gpu --gpus 1

      initbench sweep results/depth        [dim]# resume: run the points not complete yet[/dim]
    """
    with reported_errors():
        # Deferred for start-up time: loads pydantic and torch.
        from initbench.runs import sweeps

        selected = launched_shard(launcher, shard)
        definition, out = sweep_definition(config, axes or [], out, device, seeds)
        if selected.count > 1 and out is None:
            raise InitbenchError(
                "--shard needs --out: every shard must write into the same sweep directory.",
                hint="For example --out /shared/results/my-sweep on every machine.",
            )
        configs = definition.configs()
        if dry_run:
            show_points(definition, configs, out, selected)
            return
        if launcher == "local":  # every point checked before the sweep directory exists (a cluster's jobs check on their own machines)
            # Deferred for start-up time: loads pydantic and torch.
            from initbench.runs.runner import prepare

            for point in configs:
                prepare(point)
        directory = sweeps.open_sweep_directory(definition, out)
        if launcher == "local":
            use_threads(threads)
            run_sweep_here(directory.path, selected, quiet)
        else:
            submit_jobs(directory.path, configs, launcher, jobs, partition, timeout_min, gpus, threads, wait)
        say(stdout, f"Sweep: {directory.path}  (merge with: initbench report {directory.path})")


def launched_shard(launcher: str, shard: str | None) -> Shard:
    """The shard that ``--shard`` names (default: the whole sweep), once ``--launcher`` is known and
    can launch it: a submitit launcher makes its own shards, and needs submitit installed."""
    # Deferred for start-up time: loads pydantic and torch.
    from initbench.runs import sweeps

    if launcher not in sweeps.LAUNCHERS:
        raise InitbenchError(f"Unknown launcher '{launcher}'.", hint=f"Valid launchers: {', '.join(sweeps.LAUNCHERS)}.")
    selected = sweeps.Shard.parse(shard) if shard is not None else sweeps.Shard()
    if shard is not None and launcher != "local":
        raise InitbenchError("--shard goes with --launcher local: the submitit launcher makes the shards itself.", hint="Give --jobs N.")
    if launcher != "local":
        sweeps.require_submitit()
    return selected


def sweep_definition(config: Path, axes: list[str], out: Path | None, device: str | None, seeds: int | None) -> tuple[Sweep, Path | None]:
    """The sweep ``config`` describes with ``axes``, and the directory it goes to: a new sweep from
    a config file, or the sweep directory ``config`` itself, resumed in place with its fixed grid."""
    # Deferred for start-up time: loads pydantic and torch.
    from initbench.config.loading import option_overrides
    from initbench.runs.sweeps import Sweep

    if config.is_dir():
        if axes or device is not None or seeds is not None:
            raise InitbenchError(
                f"{config} is a sweep directory: its grid is fixed, so it takes no axes, --device or --seeds.",
                hint="To change the grid, start a new sweep from a config.",
            )
        if out is not None and out.resolve() != config.resolve():
            raise InitbenchError(f"{config} is a sweep directory; it resumes in place, not in --out {out}.")
        return Sweep.load(config), config
    fixed, names = option_overrides({"device": ("--device", device), "seeds": ("--seeds", seeds)})
    return Sweep.from_config(config, axes, fixed, names), out


def submit_jobs(
    path: Path,
    configs: list[Config],
    launcher: str,
    jobs: int | None,
    partition: str | None,
    timeout_min: int | None,
    gpus: int | None,
    threads: int | None,
    wait: bool,
) -> None:
    """Submit the sweep in ``path`` as a job array through submitit (``jobs`` shards; default one per
    stack), say where its logs go, and with ``wait`` wait for the jobs."""
    # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
    from initbench.outputs.run_report import render_into
    from initbench.runs import sweeps

    count = min(jobs or len(sweeps.stacks(configs, range(len(configs)))), len(configs))
    cluster = "local" if launcher == "submitit-local" else None
    submitted = sweeps.submit(path, count, render_into, cluster, partition, timeout_min, gpus, threads=threads)
    ids = ", ".join(job.job_id for job in submitted[:3]) + (", ..." if count > 3 else "")
    say(stdout, f"Submitted {count} jobs ({ids}); logs in {path / 'submitit'}.")
    if wait:
        wait_for_jobs(submitted)


def run_sweep_here(path: Path, shard: Shard, quiet: bool) -> None:
    """Run ``shard`` of the sweep in this process, with a progress bar on a terminal; exit 1 if a point failed."""
    # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
    from initbench.outputs.run_report import render_into
    from initbench.runs.sweeps import run_shard

    def log(message: str) -> None:
        if not quiet:
            say(stdout, message)

    with progress_shown(quiet) as progress:
        points = progress.bar() if isinstance(progress, RichProgress) else progress  # a second bar: the shard's points
        outcome = run_shard(path, render_into, shard, progress, log, points=points)
    counts = f"{len(outcome.ran)} ran, {len(outcome.skipped)} already complete, {len(outcome.busy)} busy elsewhere, {len(outcome.failed)} failed"
    say(stdout, f"Shard {shard}: {counts}." if shard.count > 1 else f"Points: {counts}.")
    if outcome.failed:
        say(stderr, ("Failed: ", "bold red"), f"{', '.join(outcome.failed)}; their meta.json has the error. Rerun the sweep to retry them.")
        raise typer.Exit(EXIT_FAILURE)


def wait_for_jobs(jobs: list[Any]) -> None:
    """Wait for submitit ``jobs``; say how many succeeded, and exit 1 if any failed."""
    failures = []
    for job in jobs:
        try:
            job.result()
        except Exception as error:  # submitit raises the job's failure here, its traceback in the message
            failures.append(f"job {job.job_id}: {(str(error).strip().splitlines() or [type(error).__name__])[-1]}")
    say(stdout, f"{len(jobs) - len(failures)} of {len(jobs)} jobs succeeded.")
    if failures:
        say(stderr, ("Failed: ", "bold red"), "; ".join(failures))
        raise typer.Exit(EXIT_FAILURE)


def show_points(definition: Sweep, configs: list[Config], out: Path | None, shard: Shard) -> None:
    """The ``--dry-run`` table: every point of the shard, its stack, status and overrides."""
    # Deferred for start-up time: loads pydantic, rich and torch.
    from initbench.render.formatting import rich_table
    from initbench.runs.sweepdir import SweepDirectory
    from initbench.runs.sweeps import point_status, stacks

    selected = shard.select(len(definition.points))
    stack_of = {index: number for number, group in enumerate(stacks(configs, selected), start=1) for index in group}
    directory = SweepDirectory(out) if out is not None and SweepDirectory.is_sweep(out) else None
    rows = [
        (
            point.name,
            stack_of[index],
            point_status(directory, point.name) if directory else "missing",
            " ".join(point.overrides),
        )
        for index in selected
        for point in [definition.points[index]]
    ]
    title = f"Sweep {definition.name}: {len(selected)} of {len(definition.points)} points"
    stdout.print(rich_table(title, ("point", "stack", "status", "overrides"), rows))
