"""``initbench report DIR``: a saved directory's tables and figures, rebuilt from its files.

Works on a run, compare or probe directory (one run directory each, a sweep's points included)
and on a sweep directory (:mod:`initbench.runs.sweeps.collect` merges its points). Nothing is run
again: a run's report is the one the run itself was rendered with (:mod:`initbench.outputs.run_report`),
from its saved files. The report goes into a new folder inside DIR, ``report-<time>`` (``-1``,
``-2``, ... while taken), claimed and written like a run directory, so it never overwrites
anything. It holds ``report.md``, ``report.html`` (one self-contained page:
:mod:`initbench.render.html`), the figures and summary.md (the same bytes as the run's own), and
tables such as ``summary.csv`` and ``theory.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from initbench.core.errors import InitbenchError
from initbench.core.interfaces import Table
from initbench.outputs.document import Report
from initbench.outputs.run_report import directory_report
from initbench.outputs.sweep_figures import by_depth_figure, heatmap_figure
from initbench.runs.results import RunResult, read_saved_json
from initbench.runs.rundir import RunDirectory, command_line, opening_meta
from initbench.runs.runner import recorded
from initbench.runs.sweepdir import SweepDirectory
from initbench.runs.sweeps import collect
from initbench.runs.sweeps.collect import varying
from initbench.runs.sweeps.grid import value_text

if TYPE_CHECKING:
    from initbench.runs.sweeps.collect import SweepReport

REPORT = "report"
#: A report folder's config.yaml says what it reports on; reporting on a report is refused.
REPORT_OF = "report_of"


def write(report: Report, of: Path, out: Path | None, extra_meta: dict[str, Any] | None = None) -> RunDirectory:
    """Claim the report folder (``out``, or a new ``report-<time>`` inside ``of``) and write ``report`` there."""

    meta = opening_meta("cpu", "-", command_line(), extra_meta)
    directory = RunDirectory.create(out, REPORT, yaml.safe_dump({REPORT_OF: str(of)}), meta, of)
    with recorded([directory]):
        for file_name, columns, rows, _ in report.tables.values():
            directory.write_csv(file_name, Table(tuple(columns), [tuple("" if value is None else value for value in row) for row in rows]))
        for name, (png, _) in report.figures.items():
            directory.write_bytes(name, png)
        if report.summary_md is not None:  # the run directory's summary.md, as the run wrote it
            directory.write_text("summary.md", report.summary_md)
        directory.write_text("report.md", report.markdown())
        directory.write_text("report.html", report.html())
    return directory


@dataclass
class Written:
    """A report written: its folder, its content, and for a sweep what was merged."""

    directory: RunDirectory
    report: Report
    sweep: SweepReport | None = None


def report_directory(path: Path, out: Path | None) -> Written:
    """Write the report of the run or sweep directory ``path`` (into ``out``, or a new folder inside it)."""
    if not path.exists():
        raise InitbenchError(f"{path} does not exist.", hint="Give the directory a run, compare, probe or sweep wrote (its --out, or results/<name>-<time>).")
    if not path.is_dir():
        raise InitbenchError(f"{path} is a file, not a run or sweep directory.", hint="Give the directory a run, compare, probe or sweep wrote (its --out, or results/<name>-<time>).")
    if SweepDirectory.is_sweep(path):
        merged = collect(path)
        report = sweep_report(merged)
        return Written(write(report, path, out, {"complete": merged.complete, "missing": len(merged.missing)}), report, merged)
    if not (path / RunDirectory.META).is_file():
        raise InitbenchError(
            f"{path} is neither a run nor a sweep directory: it has no meta.json or sweep.json.",
            hint="Give the directory a run, compare, probe or sweep wrote (its --out, or results/<name>-<time>).",
        )
    result = RunResult.load(path)
    if REPORT_OF in result.config:
        raise InitbenchError(f"{path} is a report (of {result.config[REPORT_OF]}).", hint=f"Run `initbench report {result.config[REPORT_OF]}` for a new one.")
    report = directory_report(path)
    return Written(write(report, path, out, {REPORT_OF: str(path)}), report)


# --- A sweep directory -------------------------------------------------------------------------


def sweep_report(merged: SweepReport) -> Report:
    """The sweep's merged table, its figures, the points still missing, and the points' environments."""

    sweep = merged.sweep
    axes = "; ".join(f"{axis.key} = {', '.join(value_text(value) for value in axis.values)}" for axis in sweep.axes)
    report = Report(
        title=f"initbench sweep report: {sweep.name}",
        subtitle=f"Directory {merged.path}: {merged.complete} of {len(sweep.points)} points complete; axes: {axes}.",
        config_text=(merged.path / SweepDirectory.BASE).read_text(encoding="utf-8") if (merged.path / SweepDirectory.BASE).is_file() else "",
        environment=sweep_environment(merged),
    )
    report.tables["Results"] = ("sweep_results.csv", merged.columns, [[row.get(column) for column in merged.columns] for row in merged.rows], (
        "One row per point and scheme; values are medians over seeds, verdicts as in each run's summary."
    ))
    if "theory_std_last" in merged.columns:
        theory = [
            (row["point"], row["scheme"], row.get("std_last"), row.get("theory_std_last"),
             None if not row.get("theory_std_last") else row["std_last"] / row["theory_std_last"])
            for row in merged.rows if "std_last" in row
        ]  # fmt: skip
        report.tables["Measured against theory"] = ("theory.csv", ("point", "scheme", "std_last", "theory_std_last", "measured / theory"), theory, (
            "The std at the last layer (median over seeds) beside the mean-field prediction."
        ))
    if merged.missing:
        report.tables[f"Missing points ({len(merged.missing)})"] = ("missing.csv", ("point", "status", "overrides"), [
            (point.name, status, " ".join(point.overrides)) for point, status in merged.missing
        ], "Run them with: initbench sweep " + str(merged.path))
    rows = [row for row in merged.rows if merged.metric in row]
    if merged.metric and len({row["depth"] for row in rows if isinstance(row.get("depth"), int)}) > 1:
        report.add_figure(f"{merged.metric}_by_depth.png", by_depth_figure(merged), f"{merged.metric} against depth")
    if merged.metric and varying(rows, ("scheme", "activation")):
        report.add_figure("heatmap.png", heatmap_figure(merged), f"{merged.metric} by scheme and activation")
    return report


def sweep_environment(merged: SweepReport) -> dict[str, Any]:
    """Each environment key of the complete points' meta.json, with every value it takes (usually one)."""
    keys = ("initbench", "torch", "python", "platform", "device", "dtype", "git_commit", "host")
    seen: dict[str, dict[str, None]] = {key: {} for key in keys}
    for point in merged.sweep.points:
        meta_path = SweepDirectory(merged.path).point_path(point.name) / RunDirectory.META
        if point.name in {missing.name for missing, _ in merged.missing} or not meta_path.is_file():
            continue
        meta = read_saved_json(meta_path)
        for key in keys:
            seen[key][str(meta.get(key))] = None
    return {key: ", ".join(values) for key, values in seen.items() if values}
