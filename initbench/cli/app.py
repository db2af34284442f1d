"""The Typer plumbing of the ``initbench`` command line: the app, how errors are shown, the options
that several commands share, and how a command runs a config with its progress bar.

This is the only module that catches :class:`~initbench.core.errors.InitbenchError`
(:func:`reported_errors`): it prints the message and exits with code 2, and the option parser's own
errors (``--depth abc``) are printed the same way, ``Error: ...`` and a hint. Other failures exit
with code 1 and a one-line message; set ``INITBENCH_FULL_ERROR=1`` for the traceback. Ctrl-C exits
130 and SIGTERM 143 (see :mod:`initbench.core.signals`, which starts the CLI). Heavy imports (torch,
matplotlib) happen inside the commands, so ``initbench --help`` answers fast. Every command that runs
something sets torch's thread count once, before any work (``--threads``, ``INITBENCH_THREADS``; see
:mod:`initbench.core.threads`).
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
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer ≥ 0.29 vendors click
from typer.core import TyperCommand, TyperGroup

from initbench._version import __version__
from initbench.core.errors import InitbenchError
from initbench.core.interfaces import Progress, SilentProgress
from initbench.core.signals import exit_code
from initbench.core.threads import ENV_VAR as THREADS_ENV_VAR
from initbench.core.threads import use_threads
from initbench.outputs.console import RichProgress, stderr, stdout

if TYPE_CHECKING:
    from initbench.config.run import Config


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


#: The commands are registered by :mod:`initbench.cli`, in the order ``initbench --help`` lists them.
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


@contextmanager
def progress_shown(quiet: bool) -> Iterator[Progress]:
    """Where a command reports its progress: a bar on stderr, unless ``--quiet`` or stderr is not a
    terminal (a pipe, a log file, a test), where nothing is shown."""
    if quiet or not stderr.is_terminal:
        yield SilentProgress()
    else:
        with RichProgress() as progress:
            yield progress


def execute_and_report(config: Config | None, out: Path | None, quiet: bool, resume: Path | None = None) -> None:
    """Run ``config`` (or resume the run in ``resume``) with a progress bar when on a terminal,
    then print the table and the path."""
    # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
    from initbench.outputs.run_report import render_into
    from initbench.runs.runner import execute
    from initbench.runs.runner import resume as resume_run

    def start(progress: Progress) -> Any:
        if resume is not None:
            return resume_run(resume, progress, render_into)
        assert config is not None
        return execute(config, out, progress, render_into)

    with progress_shown(quiet) as progress:
        directory, shown = start(progress)
    if not quiet:
        for table in shown:
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


# The options that several commands take, each declared here once. A command lists them among its
# own parameters, in the place its --help shows them.

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


def run_config(config: Config, out: Path | None, threads: int | None, quiet: bool) -> None:
    """The end of every command that runs one config: ``--threads`` set before any work, then
    :func:`execute_and_report` with ``--out`` and ``--quiet``."""
    use_threads(threads)
    execute_and_report(config, out, quiet)
