"""The ``initbench`` command line.

    initbench run configs/relu_kaiming.yaml
    initbench run configs/relu_kaiming.yaml model.depth=50 init.scheme=xavier_normal
    initbench compare zeros random xavier he
    initbench compare normal:std=0.01 xavier_uniform:gain=auto he --activation tanh
    initbench list schemes

This is the only module that catches :class:`~initbench.core.errors.InitbenchError`: it prints the
message and exits with code 2, and the option parser's own errors (``--depth abc``) are printed
the same way, ``Error: ...`` and a hint. Other failures exit with code 1 and a one-line message; set
``INITBENCH_FULL_ERROR=1`` for the traceback. Ctrl-C exits 130 and SIGTERM 143 (see
:mod:`initbench.core.signals`, which starts the CLI). Heavy imports (torch, matplotlib) happen inside the
commands, so ``initbench --help`` answers fast. Every command that runs something sets torch's
thread count once, before any work (``--threads``, ``INITBENCH_THREADS``; see :mod:`initbench.core.threads`).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer ≥ 0.29 vendors click
from typer.core import TyperCommand, TyperGroup

from initbench._version import __version__
from initbench.core.errors import InitbenchError
from initbench.core.signals import exit_code
from initbench.core.threads import ENV_VAR as THREADS_ENV_VAR
from initbench.outputs.console import RichProgress, stderr, stdout

if TYPE_CHECKING:
    from initbench.config.run import Config
    from initbench.runs.sweeps import Shard, Sweep


EXIT_USER_ERROR = 2


EXIT_FAILURE = 1


#: Narrower terminals (or COLUMNS=0, which makes rich print nothing) get tables this wide instead.
MIN_COLUMNS = 40


FALLBACK_COLUMNS = 80


def say(console: Console, *parts: str | tuple[str, str]) -> None:
    """Print one line of ``parts`` (text, or ``(text, style)``) literally: paths and messages are
    never read as rich markup (``results/a[b]`` stays itself), highlighted or wrapped."""
    console.print(Text.assemble(*parts), highlight=False, soft_wrap=True)


def show_user_error(message: str, hint: str | None) -> None:
    """A user error on stderr, the same whoever found it (initbench or the option parser):
    ``Error: MESSAGE`` and, on the next line, the hint."""
    say(stderr, ("Error: ", "bold red"), message)
    if hint:
        say(stderr, hint)


def flags_as_flags(params: list[Any]) -> list[Any]:
    """On/off options shown in ``--help`` as what they are, ``--measure``, not ``--measure <bool>``
    (which reads as if it took a value)."""
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    return params


class InitbenchCommand(TyperCommand):
    """A Typer command whose ``--help`` shows on/off options as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return flags_as_flags(super().get_params(ctx))


class InitbenchGroup(TyperGroup):
    """Typer's command group, with the option parser's errors (a bad ``--depth abc``, a missing
    argument, an unknown option) printed as initbench prints its own, exit code 2, instead of in
    Typer's panel, and flags shown as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return flags_as_flags(super().get_params(ctx))

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)  # typer.Exit comes back as its code
        except NoArgsIsHelpError as help_instead:  # bare `initbench`: rich printed the help while making this error
            sys.exit(help_instead.exit_code)
        except ClickException as error:
            context = getattr(error, "ctx", None)
            usage = f"See '{context.command_path} --help'." if context is not None else None
            usable_terminal()
            show_user_error(error.format_message(), usage)
            sys.exit(error.exit_code)
        except typer.Abort:  # EOF at a prompt; initbench asks none, but click may raise it
            sys.exit(EXIT_FAILURE)
        sys.exit(code if isinstance(code, int) else 0)


class InitbenchTyper(typer.Typer):
    """Typer, with every command an :class:`InitbenchCommand`."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or InitbenchCommand, **kwargs)


app = InitbenchTyper(
    name="initbench",
    cls=InitbenchGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


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
        show_user_error(error.message, error.hint)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (see initbench.core.signals): 130 or 143
        say(stderr, ("Interrupted.", "yellow"), " A run directory already started records status 'interrupted' in its meta.json.")
        raise typer.Exit(exit_code(interrupt)) from None
    except Exception as error:
        if os.environ.get("INITBENCH_FULL_ERROR") == "1":
            raise
        say(stderr, ("Failed: ", "bold red"), f"{type(error).__name__}: {error}")
        say(stderr, "Set INITBENCH_FULL_ERROR=1 to see the full traceback.")
        raise typer.Exit(EXIT_FAILURE) from None


def execute_and_report(config: Config | None, out: Path | None, quiet: bool, resume: Path | None = None) -> None:
    """Run ``config`` (or resume the run in ``resume``) with a progress bar when on a terminal,
    then print the table and the path."""
    from initbench.core.interfaces import Progress, SilentProgress
    from initbench.runs.runner import execute
    from initbench.runs.runner import resume as resume_run

    def start(progress: Progress) -> Any:
        if resume is not None:
            return resume_run(resume, progress)
        assert config is not None
        return execute(config, out, progress)

    if quiet or not stderr.is_terminal:
        directory, result = start(SilentProgress())
    else:
        with RichProgress() as progress:
            directory, result = start(progress)
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


EvalOption = Annotated[
    bool | None,
    typer.Option("--eval/--no-eval", help="Modules in eval mode (BatchNorm's running statistics, no dropout) or train mode. Default: the config's model.eval, else train.", show_default=False),
]


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads", envvar=THREADS_ENV_VAR, min=1, show_default=False,
        help="torch's CPU threads. Default: the cores other processes leave idle (1 on a busy machine).",
    ),
]  # fmt: skip


def option_overrides(options: dict[str, tuple[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """The options a user gave as config overrides, and which option set each key.

    ``options`` maps a dotted config key to (the option's name, its value; None: not given), e.g.
    ``{"model.depth": ("--depth", 0)}`` → ``["model.depth=0"]`` and ``{"model.depth": "--depth"}``,
    so that the config's error says ``--depth``, the name the user typed.
    """
    given = {key: (name, value) for key, (name, value) in options.items() if value is not None}
    overrides = [f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, (_, value) in given.items()]
    return overrides, {key: name for key, (name, _) in given.items()}


def use_threads(threads: int | None) -> None:
    """Set torch's thread count once, before any work (see :mod:`initbench.core.threads`)."""
    from initbench.core.threads import use_threads as set_threads

    set_threads(threads)


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="A YAML config, e.g. configs/relu_kaiming.yaml or a run's config.yaml.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE overrides, e.g. model.depth=50 init.gain=auto.", show_default=False)] = None,
    out: OutOption = None,
    device: DeviceOption = None,
    seeds: SeedsOption = None,
    eval_mode: EvalOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Run an interrupted or failed run again in its directory, from where it stopped.")
    ] = None,
) -> None:
    """Run the experiment a config describes.

    [bold]Examples[/bold]

      initbench run configs/relu_kaiming.yaml

      initbench run configs/relu_kaiming.yaml model.depth=50 init.scheme=xavier_normal --seeds 3

      initbench run --resume results/circles_dlai-20250101-120000
    """
    with reported_errors():
        if resume is not None:
            if config is not None or overrides or out is not None or device is not None or seeds is not None or eval_mode is not None:
                raise InitbenchError(
                    "--resume takes only the run directory: the run continues with the config it recorded.",
                    hint=f"Run `initbench run --resume {resume}` alone, or start a new run with the changes.",
                )
            use_threads(threads)
            execute_and_report(None, None, quiet, resume)
            return
        if config is None:
            raise InitbenchError("Give a config to run, or --resume DIR.", hint="For example: initbench run configs/relu_kaiming.yaml")
        from initbench.config.loading import apply_overrides, read_yaml, validate_config
        from initbench.runs.sweeps import check_no_sweep_section

        raw = read_yaml(config)  # the only read: a pipe or /dev/stdin can be read once
        check_no_sweep_section(raw, config)
        flags, names = option_overrides({"device": ("--device", device), "seeds": ("--seeds", seeds), "model.eval": ("--eval/--no-eval", eval_mode)})
        validated = validate_config(apply_overrides(raw, [*(overrides or []), *flags]), str(config), names)
        use_threads(threads)
        execute_and_report(validated, out, quiet)


def is_override(argument: str) -> bool:
    """``model.depth=50`` is an override; ``normal:std=0.01`` (a ``:`` before the ``=``) a scheme."""
    key, sep, _ = argument.partition("=")
    return bool(sep) and ":" not in key


@app.command()
def compare(
    schemes: Annotated[
        list[str],
        typer.Argument(help="Schemes as NAME or NAME:key=value,key=value (each string labels its run), and KEY=VALUE config overrides such as model.depth=50.", show_default=False),
    ],
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
    eval_mode: EvalOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run one experiment per scheme on the same network, with the results overlaid.

    [bold]Examples[/bold]

      initbench compare zeros random xavier he

      initbench compare normal:std=0.01 xavier_uniform:gain=auto he --activation tanh --depth 100 --width 256

      initbench compare zeros normal:std=10 he --config configs/circles_dlai.yaml --seeds 3

      initbench compare zeros he --experiment train --dataset moons --steps 2000 train.optimizer=adam
    """
    with reported_errors():
        from initbench.config.loading import DEFAULT_COMPARE, DEFAULT_TRAIN_COMPARE, compare_config, read_yaml

        overrides = [argument for argument in schemes if is_override(argument)]
        schemes = [argument for argument in schemes if not is_override(argument)]
        if not schemes:
            raise InitbenchError("Give at least one scheme to compare.", hint="For example: initbench compare xavier he")
        if config is not None:
            from initbench.runs.sweeps import check_no_sweep_section

            raw = read_yaml(config)
            check_no_sweep_section(raw, config)
        else:
            raw = dict(DEFAULT_TRAIN_COMPARE if experiment == "train" else DEFAULT_COMPARE)
        validated = compare_config(raw, str(config) if config is not None else None, schemes, {
            "model.activation": ("--activation", activation), "model.depth": ("--depth", depth), "model.width": ("--width", width),
            "input.batch": ("--batch", batch), "seeds": ("--seeds", seeds), "device": ("--device", device), "experiment": ("--experiment", experiment),
            "train.dataset": ("--dataset", dataset), "train.steps": ("--steps", steps), "train.lr": ("--lr", lr), "model.eval": ("--eval/--no-eval", eval_mode),
        }, overrides)  # fmt: skip
        use_threads(threads)
        execute_and_report(validated, out, quiet)


@app.command()
def probe(
    factory: Annotated[str, typer.Argument(help="The model's factory as package.module:callable, e.g. torch.nn:TransformerEncoderLayer.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="KEY=VALUE overrides, e.g. model.kwargs.d_model=64 model.kwargs.nhead=4.", show_default=False)
    ] = None,
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="The input's shape, batch first, e.g. 8,16,64.")] = None,
    tokens: Annotated[int | None, typer.Option("--tokens", help="Feed integer tokens in [0, V) instead of N(0, 1) floats (embedding models).", min=1)] = None,
    scheme: Annotated[
        list[str] | None, typer.Option("--scheme", help="Redraw every weight with this scheme (repeat for several); default: the model's own init.")
    ] = None,
    experiment: Annotated[str, typer.Option("--experiment", help="forward or gradients.")] = "forward",
    seeds: SeedsOption = None,
    device: DeviceOption = None,
    eval_mode: EvalOption = None,
    out: OutOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Probe your own model: per-module output statistics at init, for its own init or initbench's schemes.

    Forward hooks on every leaf module record each call's output in execution order; with
    --experiment gradients, a fixed random loss is backpropagated too.

    [bold]Examples[/bold]

      initbench probe torch.nn:TransformerEncoderLayer model.kwargs.d_model=64 model.kwargs.nhead=4 model.kwargs.batch_first=true --input-shape 8,16,64

      initbench probe mypkg.models:build --input-shape 32,3,32,32 --scheme he --scheme default --seeds 3

      initbench probe torch.nn:Embedding model.kwargs.num_embeddings=100 model.kwargs.embedding_dim=32 --input-shape 8,16 --tokens 100
    """
    with reported_errors():
        from initbench.config.loading import load_config

        if experiment not in ("forward", "gradients"):
            raise InitbenchError(f"--experiment {experiment}: probe runs forward or gradients.")
        raw: dict[str, Any] = {
            "name": "probe-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in factory.rpartition(":")[2])[:60],
            "experiment": experiment,
            "model": {"arch": "module", "factory": factory},
            "init": {"schemes": list(scheme)} if scheme else {"scheme": "constructor"},
        }
        if input_shape is not None:
            raw["input"] = {"shape": parse_shape(input_shape)}
        flags, names = option_overrides(
            {"input.tokens": ("--tokens", tokens), "seeds": ("--seeds", seeds), "device": ("--device", device), "model.eval": ("--eval/--no-eval", eval_mode)}
        )
        validated = load_config(None, [*(overrides or []), *flags], base=raw, options=names)
        use_threads(threads)
        execute_and_report(validated, out, quiet)


@app.command()
def recommend(
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE overrides, e.g. model.bias=true or model.kwargs.d_model=64.", show_default=False)] = None,
    arch: Annotated[str | None, typer.Option("--arch", help="A built-in net: mlp, resmlp or cnn.")] = None,
    factory: Annotated[str | None, typer.Option("--factory", help="Your model's factory, package.module:callable (with --input-shape).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A config whose model and input sections describe the net.")] = None,
    depth: Annotated[int | None, typer.Option("--depth", help="Layers (or residual blocks) of a built-in net.")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Units (channels for the cnn) of a built-in net.")] = None,
    activation: Annotated[str | None, typer.Option("--activation", help="The activation, e.g. tanh.")] = None,
    norm: Annotated[str | None, typer.Option("--norm", help="none, batchnorm or layernorm.")] = None,
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="A factory's input shape, batch first, e.g. 64,5.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="The training check's dataset (default digits; a factory trains only with one).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Training check steps (0: no training check).", min=0)] = 200,
    lr: Annotated[float, typer.Option("--lr", help="Training check learning rate (sgd, momentum 0.9).", callback=finite)] = 0.05,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds of every check.", min=1)] = 3,
    data_driven: Annotated[bool, typer.Option("--data-driven", help="Use the data pass even where theory applies (it sees the cnn's zero padding).")] = False,
    out: OutOption = None,
    device: DeviceOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Per-layer init scales that hold every layer at unit variance, as init.rules, checked against PyTorch's defaults and He.

    [bold]Examples[/bold]

      initbench recommend --arch cnn --depth 20 --activation tanh

      initbench recommend --arch resmlp --depth 10 --norm layernorm --steps 100

      initbench recommend --factory tests.probe_models:small_mlp --input-shape 64,5
    """
    with reported_errors():
        from initbench.config.loading import validate_config
        from initbench.core.interfaces import SilentProgress
        from initbench.runs.recommend import base_config, recommend_for, result_of, save, training_section

        flags, names = option_overrides({
            "model.depth": ("--depth", depth), "model.width": ("--width", width), "model.activation": ("--activation", activation),
            "model.norm": ("--norm", norm), "input.shape": ("--input-shape", None if input_shape is None else parse_shape(input_shape)),
        })  # fmt: skip
        raw = base_config(arch, factory, config, [*flags, *(overrides or [])], seeds, device)
        validate_config(raw, None, {**names, "seeds": "--seeds", "device": "--device"})  # refused in the flags' own names, before any work
        use_threads(threads)
        if lr <= 0:
            raise InitbenchError(f"--lr: the training check's learning rate must be above 0 (got {lr}).")
        chosen = dataset if dataset is not None or factory is not None else "digits"
        train = training_section(chosen, steps, lr) if chosen is not None and steps > 0 else None
        if train is None and steps > 0 and not quiet:
            say(stderr, "No training check: a factory's model trains only on a --dataset you name (its input and output sizes are yours).")
        if quiet or not stderr.is_terminal:
            found = recommend_for(raw, train, SilentProgress(), data_driven)
        else:
            with RichProgress() as progress:
                found = recommend_for(raw, train, progress, data_driven)
        result = result_of(found)
        directory = save(found, result, out, found.forward.device)
        if not quiet:
            for table in result.console_tables:
                stdout.print(table)
        say(stdout, f"Rules: {directory.path / 'config.yaml'} (initbench run it to measure them again)")


def parse_shape(text: str) -> list[int]:
    """``8,16,64`` → [8, 16, 64]; every size a positive integer."""
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",")]
    except ValueError:
        raise InitbenchError(f"--input-shape {text}: give sizes separated by commas, batch first, e.g. 8,16,64.") from None
    if not shape or min(shape) < 1:
        raise InitbenchError(f"--input-shape {text}: every size must be a positive integer.")
    return shape


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
        from initbench.runs import sweeps

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
            fixed, names = option_overrides({"device": ("--device", device), "seeds": ("--seeds", seeds)})
            definition = sweeps.Sweep.from_config(config, axes or [], fixed, names)
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
            from initbench.runs.runner import prepare

            for config in configs:
                prepare(config)
        directory = sweeps.open_sweep_directory(definition, out)
        if launcher == "local":
            use_threads(threads)
            run_sweep_here(directory.path, selected, quiet)
        else:
            count = min(jobs or len(sweeps.stacks(configs, range(len(configs)))), len(configs))
            cluster = "local" if launcher == "submitit-local" else None
            submitted = sweeps.submit(directory.path, count, cluster, partition, timeout_min, gpus, threads=threads)
            ids = ", ".join(job.job_id for job in submitted[:3]) + (", ..." if count > 3 else "")
            say(stdout, f"Submitted {count} jobs ({ids}); logs in {directory.path / 'submitit'}.")
            if wait:
                wait_for_jobs(submitted)
        say(stdout, f"Sweep: {directory.path}  (merge with: initbench report {directory.path})")


def run_sweep_here(path: Path, shard: Shard, quiet: bool) -> None:
    """Run ``shard`` of the sweep in this process, with a progress bar on a terminal; exit 1 if a point failed."""
    from initbench.runs.sweeps import run_shard

    def log(message: str) -> None:
        if not quiet:
            say(stdout, message)

    if quiet or not stderr.is_terminal:
        outcome = run_shard(path, shard, log=log)
    else:
        with RichProgress() as progress:
            outcome = run_shard(path, shard, progress, log, points=progress.bar())
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


@app.command()
def report(
    directory: Annotated[Path, typer.Argument(help="A run, compare, probe or sweep directory (the --out of that command).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the report here (new or empty). Default: DIRECTORY/report-<time>/.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Rebuild a directory's tables and figures from its files, into report.md and a self-contained report.html.

    Nothing runs again. For a sweep, its finished points are merged into one table and what is
    missing is listed.

    [bold]Examples[/bold]

      initbench report results/compare-20250101-120000

      initbench report results/depth

      initbench report /shared/sw --out reports/sw-today
    """
    with reported_errors():
        from initbench.outputs.reporter import report_directory
        from initbench.render.formatting import rich_table

        written = report_directory(directory, out)
        merged = written.sweep
        if merged is None:
            if not quiet and written.report.tables:
                heading, (_, columns, rows, _) = next(iter(written.report.tables.items()))
                stdout.print(rich_table(heading, columns, rows))
        else:
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
                say(stdout, f"Once no shard is running any more, run them with: initbench sweep {directory}")
            else:
                say(stdout, f"All {total} points complete.")
        say(stdout, f"Report: {written.directory.path}")


Sb2Help = "Bias variance σ_b² (biases N(0, σ_b²))"


@app.command()
def gain(
    activation: Annotated[str, typer.Argument(help="Any registered activation, e.g. gelu or leaky_relu:negative_slope=0.2.")],
    sb2: Annotated[float, typer.Option("--sb2", help=f"{Sb2Help}.", min=0.0, callback=finite)] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object of the gains (theory alone) instead of the table.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write a run directory here (must be new or empty): gains.csv, summary.json, summary.md.")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Nets per gain in the measured check (seeds 0..N-1); the table shows the median.")] = None,
    device: DeviceOption = None,
    threads: ThreadsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; with --out no table either, only the run directory.")] = False,
) -> None:
    """The variance-preserving, critical and PyTorch gains of an activation, with a measured check.

    [bold]Examples[/bold]

      initbench gain gelu

      initbench gain tanh --sb2 0.05 --json
    """
    with reported_errors():
        import json

        import torch

        from initbench.config.loading import apply_overrides, validate_config
        from initbench.core.interfaces import SilentProgress
        from initbench.core.registry import build_from_spec
        from initbench.experiments.gain import GainExperiment, gains_of
        from initbench.nets.activations import ACTIVATIONS, check_representable
        from initbench.runs.jsonio import json_safe
        from initbench.runs.runner import run_detached

        if as_json and out is not None:
            raise InitbenchError("--json prints the theory's gains alone; --out writes the measured check too. Give one of them.")
        function = build_from_spec(ACTIVATIONS, activation)  # an unknown name is refused in the command's own words
        check_representable(function, torch.float32, f"activation '{activation}'")  # the measured nets are float32
        # The net of the measured check: 100 layers of 256 units, batch 256 (the README's numbers).
        raw = {"name": "gain", "experiment": "gain", "model": {"activation": activation}, "gain": {"sb2": sb2}, "input": {"batch": 256}}
        flags, names = option_overrides({"device": ("--device", device), "seeds": ("--seeds", seeds)})
        config = validate_config(apply_overrides(raw, flags), None, {"gain.sb2": "--sb2", **names})
        use_threads(threads)
        if as_json:
            stdout.print_json(json.dumps(json_safe(gains_of(config).as_json()), allow_nan=False))
        elif out is not None:
            execute_and_report(config, out, quiet)
        elif quiet or not stderr.is_terminal:
            print_tables(run_detached(GainExperiment(), config, SilentProgress()).console_tables)
        else:
            with RichProgress() as progress:
                result = run_detached(GainExperiment(), config, progress)
            print_tables(result.console_tables)


def print_tables(tables: list[Any]) -> None:
    for table in tables:
        stdout.print(table)


@app.command()
def phase(
    activation: Annotated[str, typer.Option("--activation", help="The activation, e.g. tanh.")] = "tanh",
    sw2: Annotated[str, typer.Option("--sw2", help="Weight variance σ_w² (weights N(0, σ_w²/fan_in)): a grid START:STOP:N, or one value.")] = "0.25:4:24",
    sb2: Annotated[str, typer.Option("--sb2", help=f"{Sb2Help}: a grid START:STOP:N, or one value.")] = "0:0.5:11",
    depth: Annotated[int, typer.Option("--depth", help="Depth of the measured nets.", min=1, max=1_000_000)] = 100,
    width: Annotated[int, typer.Option("--width", help="Width of the measured nets.", min=1)] = 256,
    measure: Annotated[bool, typer.Option("--measure", help="Also measure correlation convergence in real nets.")] = False,
    seeds: Annotated[int | None, typer.Option("--seeds", help="--measure: nets per grid point (seeds 0..N-1), their correlations averaged.")] = None,
    out: OutOption = None,
    device: DeviceOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """The order–chaos phase diagram over (σ_w², σ_b²): χ₁, depth scales and the common schemes.

    [bold]Examples[/bold]

      initbench phase --activation tanh

      initbench phase --activation relu --sw2 1:3:21 --sb2 0:0.2:5 --measure --depth 50

      initbench phase --activation tanh --sb2 0.05          [dim]# one σ_b², a row of σ_w²[/dim]
    """
    with reported_errors():
        import torch

        from initbench.config.grids import parse_grid
        from initbench.config.loading import apply_overrides, validate_config
        from initbench.core.registry import build_from_spec
        from initbench.nets.activations import ACTIVATIONS, check_representable

        function = build_from_spec(ACTIVATIONS, activation)
        check_representable(function, torch.float32, f"--activation '{activation}'")  # the measured nets are float32
        parse_grid(sw2, "--sw2"), parse_grid(sb2, "--sb2")  # refused in the options' own words
        raw: dict[str, Any] = {
            "name": f"phase-{function.registry_name}",
            "experiment": "phase",
            "model": {"activation": activation, "depth": depth, "width": width},
            "phase": {"sw2": sw2, "sb2": sb2, "measure": measure},
        }
        if seeds is not None and not measure:
            raise InitbenchError("--seeds: only --measure uses them; the theory has no seeds.", hint="Add --measure, or drop --seeds.")
        flags, names = option_overrides({"device": ("--device", device), "seeds": ("--seeds", seeds)})
        names |= {"model.depth": "--depth", "model.width": "--width", "phase.sw2": "--sw2", "phase.sb2": "--sb2"}
        config = validate_config(apply_overrides(raw, flags), None, names)
        use_threads(threads)
        execute_and_report(config, out, quiet)


#: reStructuredText's inline code in docstrings: ``x``, and roles such as :class:`~initbench.a.B`.
RST_CODE = re.compile(r"(?::[a-z]+:)?(``?)~?(?P<code>[^`]+)\1")


def docstring_parts(line: str) -> list[str | tuple[str, str]]:
    """A docstring line for the terminal: inline code in its own style, without the backticks
    (and where there are no styles, as in a pipe, plain text)."""
    parts: list[str | tuple[str, str]] = []
    position = 0
    for match in RST_CODE.finditer(line):
        parts += [line[position : match.start()], (match["code"].rpartition(".")[2] if match.group(0).startswith(":") else match["code"], "cyan")]
        position = match.end()
    return [*parts, line[position:]]


@app.command("list")
def list_entries(
    what: Annotated[str, typer.Argument(help="schemes, activations, datasets or experiments.")] = "schemes",
) -> None:
    """List the registered schemes, activations, datasets or experiments, with their formulas and options."""
    with reported_errors():
        from initbench.core.registry import unknown_name_error
        from initbench.data.base import DATASETS
        from initbench.experiments.base import EXPERIMENTS
        from initbench.nets.activations import ACTIVATIONS
        from initbench.schemes.base import SCHEMES

        registries = {"schemes": SCHEMES, "activations": ACTIVATIONS, "datasets": DATASETS, "experiments": EXPERIMENTS}
        if what not in registries:
            raise unknown_name_error("list", what, list(registries))
        registry = registries[what]
        for name, entry in registry:
            aliases = registry.aliases_of(name)
            fields = getattr(entry, "model_fields", {})
            options = ", ".join(
                f"{field.alias or key}=" + ("(required)" if field.is_required() else str(field.get_default(call_default_factory=True))) for key, field in fields.items()
            )
            say(stdout, (name, "bold cyan"), f" (alias {', '.join(aliases)})" if aliases else "", (f"  options: {options}" if options else "", "dim"))
            say(stdout, "    ", *docstring_parts((entry.__doc__ or "").strip().splitlines()[0]))
            if getattr(entry, "formula", ""):
                say(stdout, (f"    {entry.formula}", "green"))
