"""A run directory read back: its config, meta.json, summary and tables as plain Python data.

This is what the Python API returns (:mod:`initbench.api`) and what ``initbench report`` rebuilds
its tables and figures from: the files on disk, never the run's objects in memory, so a result
reads the same in a notebook today and from an archived directory next year.

    result = RunResult.load("results/relu_kaiming-20250101-120000")
    result.schemes["kaiming_normal"]["verdict"]    # summary.json's entry for the scheme
    result.layer_stats[0]["std"]                   # layer_stats.csv's first row
    result.layer_stats_frame()                     # the same as a pandas DataFrame

Numbers come back as Python numbers, non-finite ones as ``float("nan")``/``inf`` (summary.json
spells them ``null`` with a ``<key>_nonfinite`` flag: :func:`initbench.runs.jsonio.json_restored`), and
empty CSV cells as None. pandas is optional: the ``*_frame`` methods import it when called.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from initbench.core.errors import InitbenchError
from initbench.runs.jsonio import json_restored, read_json
from initbench.runs.rundir import RunDirectory, csv_text, json_text

if TYPE_CHECKING:
    import pandas

    from initbench.experiments.base import ExperimentResult

SUMMARY = "summary.json"


def parse_cell(text: str) -> int | float | str | None:
    """A CSV cell as written by :meth:`RunDirectory.write_csv`: empty → None, then int, float
    (``nan``, ``inf`` included) or the text itself."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_table(path: Path) -> list[dict[str, Any]]:
    """A CSV file's rows as dicts (:func:`parse_table`)."""
    with path.open(newline="", encoding="utf-8") as stream:  # as RunDirectory writes it, whatever the locale
        return parse_table(stream)


def parse_table(lines: Iterable[str]) -> list[dict[str, Any]]:
    """CSV text's rows as dicts. A column whose every filled cell is a number holds numbers; any
    other column (scheme labels such as ``1e3`` among ``he``) keeps its text."""
    rows = list(csv.DictReader(lines))
    if not rows:
        return []
    parsed = {column: [parse_cell(row[column] or "") for row in rows] for column in rows[0]}
    numeric = {column: all(value is None or isinstance(value, (int, float)) for value in values) for column, values in parsed.items()}
    return [
        {column: parsed[column][index] if numeric[column] else (row[column] if row[column] != "" else None) for column in row}
        for index, row in enumerate(rows)
    ]


def require_pandas(method: str) -> Any:
    try:
        # Deferred for start-up time: loads pandas.
        import pandas
    except ImportError:
        raise InitbenchError(f"{method}() needs pandas, which initbench does not install.", hint="Run `pip install pandas`.") from None
    return pandas


@dataclass
class RunResult:
    """What a run directory holds, as plain data.

    Attributes:
        path: the run directory.
        config: the resolved ``config.yaml``, as a dict.
        meta: ``meta.json``: versions, device, command, git commit, status, times.
        summary: ``summary.json`` (None for experiments that write none, such as ``phase``).
        tables: CSV file name → its rows as dicts, e.g. ``tables["layer_stats.csv"]``.
        json_files: the other JSON files by name (``training.json``), as data.
    """

    path: Path
    config: dict[str, Any]
    meta: dict[str, Any]
    summary: dict[str, Any] | None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    json_files: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read the run directory ``path`` (a run, compare or probe directory, or a sweep's point)."""
        path = Path(path)
        if not (path / RunDirectory.META).is_file() or not (path / RunDirectory.CONFIG).is_file():
            raise InitbenchError(f"{path} is not a run directory: it has no {RunDirectory.META} and {RunDirectory.CONFIG}.")
        try:
            config = yaml.safe_load((path / RunDirectory.CONFIG).read_text(encoding="utf-8")) or {}
            meta = read_json(path / RunDirectory.META)
            summary = read_json(path / SUMMARY) if (path / SUMMARY).is_file() else None
            tables = {table.name: read_table(table) for table in sorted(path.glob("*.csv"))}
            others = {file.name: read_json(file) for file in sorted(path.glob("*.json")) if file.name not in (RunDirectory.META, SUMMARY)}
        except (OSError, ValueError, yaml.YAMLError) as error:
            raise InitbenchError(f"Cannot read the run directory {path}: {error}.") from None
        if not isinstance(config, dict) or not isinstance(meta, dict):
            raise InitbenchError(f"Cannot read the run directory {path}: its config.yaml or meta.json is not a mapping.")
        return cls(path=path, config=config, meta=meta, summary=summary, tables=tables, json_files=others)

    @classmethod
    def of(cls, path: Path, config: dict[str, Any], meta: dict[str, Any], result: ExperimentResult) -> RunResult:
        """An experiment's data as :meth:`load` reads it once written: each table and JSON file
        passes through its file's text, so what is built from it equals what is built from the files."""
        return cls(
            path=path,
            config=config,
            meta=meta,
            summary=None if result.summary is None else json_restored(json.loads(json_text(result.summary))),
            tables={name: parse_table(io.StringIO(csv_text(table))) for name, table in result.tables.items()},
            json_files={name: json_restored(json.loads(json_text(value))) for name, value in result.json_files.items()},
        )

    @property
    def experiment(self) -> str:
        return str(self.config.get("experiment", "forward"))

    @property
    def status(self) -> str:
        return str(self.meta.get("status"))

    @property
    def layer_stats(self) -> list[dict[str, Any]]:
        """``layer_stats.csv``: one row per (scheme, seed, layer); empty for experiments without it."""
        return self.tables.get("layer_stats.csv", [])

    @property
    def schemes(self) -> dict[str, dict[str, Any]]:
        """The summary's per-scheme entries (empty where there is no summary)."""
        return (self.summary or {}).get("schemes", {})

    def frame(self, table: str) -> pandas.DataFrame:
        """One CSV table (``layer_stats.csv``, ``train_metrics.csv``, ...) as a pandas DataFrame."""
        pandas = require_pandas("frame")
        if table not in self.tables:
            raise InitbenchError(f"{self.path} has no table '{table}'.", hint=f"Its tables: {', '.join(self.tables) or 'none'}.")
        return pandas.DataFrame(self.tables[table])

    def layer_stats_frame(self) -> pandas.DataFrame:
        """``layer_stats.csv`` as a DataFrame (NaN where a value was non-finite or empty)."""
        require_pandas("layer_stats_frame")
        return self.frame("layer_stats.csv")

    def summary_frame(self) -> pandas.DataFrame:
        """One row per scheme: the summary's numbers and words, per-layer lists and nested mappings
        flattened as ``theory.chi1`` (lists are left out: they are per layer or per seed)."""
        pandas = require_pandas("summary_frame")
        rows = []
        for label, entry in self.schemes.items():
            flat: dict[str, Any] = {"scheme": label}
            for key, value in flattened(entry):
                flat[key] = value
            rows.append(flat)
        return pandas.DataFrame(rows).set_index("scheme") if rows else pandas.DataFrame()

    def __repr__(self) -> str:
        schemes = ", ".join(self.schemes) or "–"
        return f"RunResult({str(self.path)!r}, experiment={self.experiment!r}, status={self.status!r}, schemes=[{schemes}])"


def flattened(entry: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` for every scalar in ``entry``, nested mappings included."""
    items: list[tuple[str, Any]] = []
    for key, value in entry.items():
        if isinstance(value, dict):
            items += flattened(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            items.append((f"{prefix}{key}", math.nan if value is None else value))
    return items

