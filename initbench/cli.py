"""The ``initbench`` command line.

    initbench run configs/relu_kaiming.yaml
    initbench run configs/relu_kaiming.yaml model.depth=50 init.scheme=xavier_normal
    initbench compare zeros random xavier he
    initbench compare normal:std=0.01 xavier_uniform:gain=auto he --activation tanh
    initbench list schemes

This is the only module that catches :class:`~initbench.errors.InitbenchError`: it prints the
message and exits with code 2. Other failures exit with code 1 and a one-line message; set
``INITBENCH_FULL_ERROR=1`` for the traceback. Heavy imports (torch, matplotlib) happen inside the
commands, so ``initbench --help`` answers fast.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from initbench import __version__
from initbench.errors import InitbenchError

if TYPE_CHECKING:
    from initbench.config import Config
    from initbench.sweep import Shard, Sweep

app = typer.Typer(
    name="initbench",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
stdout = Console()
stderr = Console(stderr=True)

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
#: Narrower terminals (or COLUMNS=0, which makes rich print nothing) get tables this wide instead.
MIN_COLUMNS = 40
FALLBACK_COLUMNS = 80


def say(console: Console, *parts: str | tuple[str, str]) -> None:
    """Print one line of ``parts`` (text, or ``(text, style)``) literally: paths and messages are
    never read as rich markup (``results/a[b]`` stays itself), highlighted or wrapped."""
    console.print(Text.assemble(*parts), highlight=False, soft_wrap=True)


def usable_terminal() -> None:
    """Make output work on any terminal: a usable width, and text that cannot fail to encode.

    COLUMNS below ``MIN_COLUMNS`` is replaced by ``FALLBACK_COLUMNS``. In an ASCII locale, characters
    the streams cannot encode (σ, →, box lines) are written as backslash escapes instead of raising.
    """
    columns = os.environ.get("COLUMNS")
    if columns is not None and not (columns.isdigit() and int(columns) >= MIN_COLUMNS):
        os.environ["COLUMNS"] = str(FALLBACK_COLUMNS)
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn user errors into exit code 2 and failures into exit code 1, without a traceback."""
    usable_terminal()
    try:
        yield
    except InitbenchError as error:
        say(stderr, ("Error: ", "bold red"), error.message)
        if error.hint:
            say(stderr, error.hint)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        say(stderr, ("Interrupted.", "yellow"), " A run directory already started records status 'interrupted' in its meta.json.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as error:
        if os.environ.get("INITBENCH_FULL_ERROR") == "1":
            raise
        say(stderr, ("Failed: ", "bold red"), f"{type(error).__name__}: {error}")
        say(stderr, "Set INITBENCH_FULL_ERROR=1 to see the full traceback.")
        raise typer.Exit(EXIT_FAILURE) from None


class RichProgress:
    """A rich progress bar on stderr, one task at a time."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=stderr, transient=True)
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)


def execute_and_report(config: Config, out: Path | None, quiet: bool) -> None:
    """Run ``config`` with a progress bar when on a terminal, then print the table and the path."""
    from initbench.experiments import SilentProgress
    from initbench.runner import execute

    if quiet or not stderr.is_terminal:
        directory, result = execute(config, out, SilentProgress())
    else:
        with RichProgress() as progress:
            directory, result = execute(config, out, progress)
    if not quiet:
        for table in result.console_tables:
            stdout.print(table)
    say(stdout, f"Results: {directory.path}")


def version_callback(value: bool) -> None:
    if value:
        say(stdout, f"initbench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool | None, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version and exit.")] = None,
) -> None:
    """Experiments on neural-network weight initialization: per-layer statistics beside theory.

    [bold]Examples[/bold]

      initbench compare zeros random xavier he

      initbench run configs/relu_kaiming.yaml model.depth=50 init.scheme=xavier_normal

      initbench list schemes
    """


def finite(value: float | None) -> float | None:
    """A float option's callback: NaN and infinity are refused, naming the option (exit 2)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number.")
    return value


OutOption = Annotated[Path | None, typer.Option("--out", help="Write exactly here (must be new or empty). Default: results/<name>-<time>/.")]
DeviceOption = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")]
SeedsOption = Annotated[int | None, typer.Option("--seeds", help="Number of seeds per scheme (seeds seed..seed+N-1).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no table; print only the run directory.")]


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="A YAML config, e.g. configs/relu_kaiming.yaml or a run's config.yaml.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE overrides, e.g. model.depth=50 init.gain=auto.", show_default=False)] = None,
    out: OutOption = None,
    device: DeviceOption = None,
    seeds: SeedsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run the experiment a config describes.

    [bold]Examples[/bold]

      initbench run configs/relu_kaiming.yaml

      initbench run configs/relu_kaiming.yaml model.depth=50 init.scheme=xavier_normal --seeds 3
    """
    with reported_errors():
        from initbench.config import load_config
        from initbench.sweep import check_no_sweep_section

        check_no_sweep_section(config)
        flags = [f"device={device}"] * (device is not None) + [f"seeds={seeds}"] * (seeds is not None)
        execute_and_report(load_config(config, [*(overrides or []), *flags]), out, quiet)


@app.command()
def compare(
    schemes: Annotated[list[str], typer.Argument(help="Schemes as NAME or NAME:key=value,key=value; each string labels its run.")],
    config: Annotated[Path | None, typer.Option("--config", help="Base config (default: 100 layers × 256 relu units, batch 1024).")] = None,
    activation: Annotated[str | None, typer.Option("--activation", help="Activation, e.g. tanh or leaky_relu:negative_slope=0.2.")] = None,
    depth: Annotated[int | None, typer.Option("--depth", help="Number of layers.")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Units per layer.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Input rows.")] = None,
    seeds: SeedsOption = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="forward, gradients, all or train (see `initbench list experiments`).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="train: the dataset, e.g. moons or digits.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="train: optimizer steps.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="train: learning rate.", callback=finite)] = None,
    out: OutOption = None,
    device: DeviceOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run one experiment per scheme on the same network, with the results overlaid.

    [bold]Examples[/bold]

      initbench compare zeros random xavier he

      initbench compare normal:std=0.01 xavier_uniform:gain=auto he --activation tanh --depth 100 --width 256

      initbench compare zeros normal:std=10 he --config configs/circles_dlai.yaml --seeds 3

      initbench compare zeros he --experiment train --dataset moons --steps 2000
    """
    with reported_errors():
        from initbench.config import DEFAULT_COMPARE, DEFAULT_TRAIN_COMPARE, apply_overrides, load_config, read_yaml

        if config is not None:
            from initbench.sweep import check_no_sweep_section

            check_no_sweep_section(config)
            raw = read_yaml(config)
        else:
            raw = dict(DEFAULT_TRAIN_COMPARE if experiment == "train" else DEFAULT_COMPARE)
        chosen = experiment or raw.get("experiment", "forward")
        training_flags = [flag for flag, value in (("--dataset", dataset), ("--steps", steps), ("--lr", lr)) if value is not None]
        if chosen != "train" and training_flags:
            raise InitbenchError(f"{', '.join(training_flags)}: only --experiment train uses them; experiment '{chosen}' would ignore them.", hint="Add --experiment train, or drop them.")
        if chosen == "train" and batch is not None:
            raise InitbenchError("--batch: experiment train ignores it (its batches come from the dataset).", hint="Set train.batch_size in a config for minibatches.")
        init = raw.get("init") if isinstance(raw.get("init"), dict) else {}
        raw["init"] = {"schemes": list(schemes), **({"bias": init["bias"]} if "bias" in init else {})}
        if (depth is not None or width is not None) and isinstance(raw.get("model"), dict):
            raw["model"] = {key: value for key, value in raw["model"].items() if key != "hidden"}  # --depth/--width replace hidden
        flags = {
            "model.activation": activation, "model.depth": depth, "model.width": width, "input.batch": batch, "seeds": seeds, "device": device,
            "experiment": experiment, "train.dataset": dataset, "train.steps": steps, "train.lr": lr,
        }
        overrides = [f"{key}={value}" for key, value in flags.items() if value is not None]
        execute_and_report(load_config(None, [], base=apply_overrides(raw, overrides)), out, quiet)


SweepOutOption = Annotated[
    Path | None, typer.Option("--out", help="The sweep directory, shared by shards and reruns. Default: results/<name>-sweep-<time>/.")
]
LauncherOption = Annotated[
    str,
    typer.Option(
        "--launcher", help="local (this process), submitit (a job array: SLURM where there is one) or submitit-local (local processes)."
    ),
]


@app.command()
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
        from initbench import sweep as sweeps

        if launcher not in sweeps.LAUNCHERS:
            raise InitbenchError(f"Unknown launcher '{launcher}'.", hint=f"Valid launchers: {', '.join(sweeps.LAUNCHERS)}.")
        selected = sweeps.Shard.parse(shard) if shard is not None else sweeps.Shard()
        if shard is not None and launcher != "local":
            raise InitbenchError("--shard goes with --launcher local: the submitit launcher makes the shards itself.", hint="Give --jobs N.")
        if launcher != "local":
            sweeps.require_submitit()
        if config.is_dir():
            if axes or device is not None or seeds is not None:
                raise InitbenchError(
                    f"{config} is a sweep directory: its grid is fixed, so it takes no axes, --device or --seeds.",
                    hint="To change the grid, start a new sweep from a config.",
                )
            if out is not None and out.resolve() != config.resolve():
                raise InitbenchError(f"{config} is a sweep directory; it resumes in place, not in --out {out}.")
            definition, out = sweeps.Sweep.load(config), config
        else:
            fixed = [f"device={device}"] * (device is not None) + [f"seeds={seeds}"] * (seeds is not None)
            definition = sweeps.Sweep.from_config(config, axes or [], fixed)
        if selected.count > 1 and out is None:
            raise InitbenchError(
                "--shard needs --out: every shard must write into the same sweep directory.",
                hint="For example --out /shared/results/my-sweep on every machine.",
            )
        configs = definition.configs()
        if dry_run:
            show_points(definition, configs, out, selected)
            return
        directory = sweeps.open_sweep_directory(definition, out)
        if launcher == "local":
            run_sweep_here(directory.path, selected, quiet)
        else:
            count = min(jobs or len(sweeps.stacks(configs, range(len(configs)))), len(configs))
            cluster = "local" if launcher == "submitit-local" else None
            submitted = sweeps.submit(directory.path, count, cluster, partition, timeout_min, gpus)
            ids = ", ".join(job.job_id for job in submitted[:3]) + (", ..." if count > 3 else "")
            say(stdout, f"Submitted {count} jobs ({ids}); logs in {directory.path / 'submitit'}.")
            if wait:
                wait_for_jobs(submitted)
        say(stdout, f"Sweep: {directory.path}  (merge with: initbench report {directory.path})")


def run_sweep_here(path: Path, shard: Shard, quiet: bool) -> None:
    """Run ``shard`` of the sweep in this process, with a progress bar on a terminal; exit 1 if a point failed."""
    from initbench.sweep import run_shard

    def log(message: str) -> None:
        if not quiet:
            say(stdout, message)

    if quiet or not stderr.is_terminal:
        outcome = run_shard(path, shard, log=log)
    else:
        with RichProgress() as progress:
            outcome = run_shard(path, shard, progress, log)
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
    from initbench.report import rich_table
    from initbench.rundir import SweepDirectory
    from initbench.sweep import point_status, stacks

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


@app.command()
def report(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep directory (the --out of initbench sweep).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the report here (new or empty). Default: SWEEP_DIR/report-<time>/.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Merge a sweep's finished points into one table, plots and report.md, and list what is missing.

    [bold]Examples[/bold]

      initbench report results/depth

      initbench report /shared/sw --out reports/sw-today
    """
    with reported_errors():
        from initbench.report import rich_table
        from initbench.sweep import collect, write_report

        merged = collect(sweep_dir)
        directory = write_report(merged, out)
        total = len(merged.sweep.points)
        if not quiet and merged.rows:
            hidden = ("point", "experiment", "seeds", "std_first", "theory_std_last", "chi1", "phase", "grad_std_first")  # all in the CSV
            shown = [column for column in merged.columns if column not in hidden]
            rows = [[row.get(column) for column in shown] for row in merged.rows]
            stdout.print(rich_table(f"Sweep {merged.sweep.name}: {merged.complete} of {total} points", shown, rows))
        if merged.missing:
            say(stdout, f"Missing {len(merged.missing)} of {total} points:")
            for point, status in merged.missing:
                say(stdout, f"  {point.name} ({status})")
            say(stdout, f"Once no shard is running any more, run them with: initbench sweep {sweep_dir}")
        else:
            say(stdout, f"All {total} points complete.")
        say(stdout, f"Report: {directory.path}")


@app.command()
def gain(
    activation: Annotated[str, typer.Argument(help="Any registered activation, e.g. gelu or leaky_relu:negative_slope=0.2.")],
    sb2: Annotated[float, typer.Option("--sb2", help="Bias variance σ_b².", min=0.0, callback=finite)] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    device: DeviceOption = None,
) -> None:
    """The variance-preserving, critical and PyTorch gains of an activation, with a measured check.

    [bold]Examples[/bold]

      initbench gain gelu

      initbench gain tanh --sb2 0.05 --json
    """
    with reported_errors():
        import json

        import torch

        from initbench.activations import ACTIVATIONS, check_representable
        from initbench.engine import resolve_device
        from initbench.gains import compute_gains, measure_gains
        from initbench.registry import build_from_spec
        from initbench.report import rich_table

        function = build_from_spec(ACTIVATIONS, activation)
        check_representable(function, torch.float32, f"activation '{activation}'")  # the measured nets are float32
        gains = compute_gains(function, sb2)
        if as_json:
            stdout.print_json(json.dumps(gains.as_json()))
            return
        measured = measure_gains(function, gains.named(), sb2, resolve_device(device or "auto"))
        labels = {"preserving": "variance-preserving", "critical": "critical (χ₁ = 1)", "torch": "PyTorch calculate_gain"}
        rows = [(labels[name], value, *measured[name]) for name, value in gains.named().items()]
        rows += [(labels[name], None, None, None) for name in labels if name not in gains.named()]
        stdout.print(rich_table(f"Gains for {gains.activation}, σ_b² = {sb2:g}", ("gain", "σ_w", "std L1", "std L100"), rows))
        say(stdout, "Measured: a 100-layer, 256-unit net with weights N(0, σ_w²/256), batch 256, seed 0. – means no such gain exists.")


@app.command()
def phase(
    activation: Annotated[str, typer.Option("--activation", help="The activation, e.g. tanh.")] = "tanh",
    sw2: Annotated[str, typer.Option("--sw2", help="σ_w² grid as START:STOP:N.")] = "0.25:4:24",
    sb2: Annotated[str, typer.Option("--sb2", help="σ_b² grid as START:STOP:N.")] = "0:0.5:11",
    depth: Annotated[int, typer.Option("--depth", help="Depth of the measured nets.", min=1)] = 100,
    width: Annotated[int, typer.Option("--width", help="Width of the measured nets.", min=1)] = 256,
    measure: Annotated[bool, typer.Option("--measure", help="Also measure correlation convergence in real nets.")] = False,
    out: OutOption = None,
    device: DeviceOption = None,
) -> None:
    """The order–chaos phase diagram over (σ_w², σ_b²): χ₁, depth scales and the common schemes.

    [bold]Examples[/bold]

      initbench phase --activation tanh

      initbench phase --activation relu --sw2 1:3:21 --sb2 0:0.2:5 --measure --depth 50
    """
    with reported_errors():
        import torch
        import yaml

        from initbench.activations import ACTIVATIONS, check_representable
        from initbench.engine import resolve_device
        from initbench.experiments import Table
        from initbench.phase import check_grid, compute_phase_diagram, measure_convergence_depth, parse_grid, scheme_positions
        from initbench.plots import phase_figure
        from initbench.registry import build_from_spec
        from initbench.report import rich_table
        from initbench.rundir import RunDirectory, command_line

        function = build_from_spec(ACTIVATIONS, activation)
        check_representable(function, torch.float32, f"--activation '{activation}'")  # the measured nets are float32
        sw2_values, sb2_values = parse_grid(sw2, "--sw2"), parse_grid(sb2, "--sb2")
        torch_device = resolve_device(device or "auto")
        check_grid(sw2_values, sb2_values, depth if measure else None, width, torch_device)
        directory = RunDirectory.create(out, f"phase-{function.registry_name}")
        settings = {"activation": activation, "sw2": sw2, "sb2": sb2, "depth": depth, "width": width, "measure": measure}
        directory.begin(yaml.safe_dump(settings, sort_keys=False), str(torch_device), "float64", command_line())
        with directory.recording():
            diagram = compute_phase_diagram(function, sw2_values, sb2_values)
            if measure:
                diagram.measured_depth = measure_convergence_depth(diagram, function, depth, width, torch_device)
            positions = scheme_positions(function)
            rows = [
                (float(diagram.sw2[column]), float(diagram.sb2[row]), float(diagram.q_star[row, column]), float(diagram.chi1[row, column]),
                 float(diagram.xi_c[row, column]), float(diagram.c_star[row, column]), float(diagram.predicted_depth[row, column]),
                 float(diagram.measured_depth[row, column]) if diagram.measured_depth is not None else "")
                for row in range(len(diagram.sb2)) for column in range(len(diagram.sw2))
            ]
            columns = ("sigma_w2", "sigma_b2", "q_star", "chi1", "xi_c", "c_star", "predicted_depth", "measured_depth")
            directory.write_csv("phase.csv", Table(columns, rows))
            figure = phase_figure(diagram, positions, depth if measure else None)
            directory.write_figure("phase.png", figure)
        summary_rows = []
        for label, value in positions.items():
            q = compute_phase_diagram(function, [value], [0.0])
            summary_rows.append((label, value, float(q.chi1[0, 0]), float(q.xi_c[0, 0])))
        stdout.print(rich_table(f"Where the common schemes sit ({function.spec()}, σ_b² = 0)", ("scheme", "σ_w²", "χ₁", "ξ_c"), summary_rows))
        ordered = int((diagram.chi1 < 1).sum())
        chaotic = int((diagram.chi1 > 1).sum())
        say(stdout, f"Grid: {len(sw2_values)} × {len(sb2_values)} points, {ordered} ordered, {chaotic} chaotic.")
        say(stdout, f"Results: {directory.path}")


@app.command("list")
def list_entries(
    what: Annotated[str, typer.Argument(help="schemes, activations, datasets or experiments.")] = "schemes",
) -> None:
    """List the registered schemes, activations, datasets or experiments, with their formulas and options."""
    with reported_errors():
        from initbench.activations import ACTIVATIONS
        from initbench.datasets import DATASETS
        from initbench.experiments import EXPERIMENTS, load_experiments
        from initbench.registry import unknown_name_error
        from initbench.schemes import SCHEMES

        load_experiments()
        registries = {"schemes": SCHEMES, "activations": ACTIVATIONS, "datasets": DATASETS, "experiments": EXPERIMENTS}
        if what not in registries:
            raise unknown_name_error("list", what, list(registries))
        registry = registries[what]
        for name, entry in registry:
            aliases = registry.aliases_of(name)
            fields = getattr(entry, "model_fields", {})
            options = ", ".join(f"{field.alias or key}={field.default}" for key, field in fields.items())
            say(stdout, (name, "bold cyan"), f" (alias {', '.join(aliases)})" if aliases else "", (f"  options: {options}" if options else "", "dim"))
            say(stdout, f"    {(entry.__doc__ or '').strip().splitlines()[0]}")
            if getattr(entry, "formula", ""):
                say(stdout, (f"    {entry.formula}", "green"))


def main() -> None:
    """Entry point of the console script and ``python -m initbench``."""
    usable_terminal()  # here too: --help never reaches a command
    app(prog_name="initbench")


if __name__ == "__main__":
    sys.exit(main())
