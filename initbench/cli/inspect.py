"""The commands that read rather than run your config: ``report`` (a directory's files, rebuilt into
a report), ``gain`` and ``phase`` (an activation's theory, with a measured check), and ``list`` (the
registries).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from initbench.cli.app import (
    DeviceOption,
    OutOption,
    QuietOption,
    ThreadsOption,
    execute_and_report,
    finite,
    progress_shown,
    reported_errors,
    run_config,
    say,
)
from initbench.core.errors import InitbenchError
from initbench.core.threads import use_threads
from initbench.outputs.console import stdout
from initbench.runs.jsonio import json_safe


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
        # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
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
        # Deferred for start-up time: loads torch.
        import torch

        # Deferred for start-up time: loads pydantic and torch.
        from initbench.config.loading import apply_overrides, option_overrides, validate_config
        from initbench.core.registry import build_from_spec
        from initbench.experiments.gain import GainExperiment, gains_of
        from initbench.nets.activations import ACTIVATIONS, check_representable

        # Deferred for start-up time: loads pydantic and torch.
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
        else:
            # Deferred for start-up time: ~35 ms of imports only this path needs.
            import yaml

            # Deferred for start-up time: loads matplotlib, pydantic, rich and torch.
            from initbench.outputs.run_report import console_of
            from initbench.runs.results import RunResult

            with progress_shown(quiet) as progress:
                result = run_detached(GainExperiment(), config, progress)
            # No directory: the reporter reads the data as its files would hold it.
            print_tables(console_of(RunResult.of(Path("."), yaml.safe_load(config.to_yaml()), {}, result)))


def print_tables(tables: list[Any]) -> None:
    for table in tables:
        stdout.print(table)


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
        # Deferred for start-up time: loads torch.
        import torch

        # Deferred for start-up time: loads pydantic and torch.
        from initbench.config.grids import parse_grid
        from initbench.config.loading import apply_overrides, option_overrides, validate_config
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
        run_config(validate_config(apply_overrides(raw, flags), None, names), out, threads, quiet)


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


def list_entries(
    what: Annotated[str, typer.Argument(help="schemes, activations, datasets or experiments.")] = "schemes",
) -> None:
    """List the registered schemes, activations, datasets or experiments, with their formulas and options."""
    with reported_errors():
        # Deferred for start-up time: loads pydantic and torch.
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
