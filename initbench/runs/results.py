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

Every saved file the reports read is read here (CSV, JSON, config.yaml, ``.npz``; the runner reads
``checkpoint.pt`` with the same error), and checked to be whole and of its kind: a file that is cut
off, unparseable or lacks what its kind holds raises :class:`DamagedFileError`, naming the file and
what is wrong (exit code 2 in the CLI), never an exception from the parser.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from initbench.core.errors import InitbenchError, shown_value
from initbench.runs.jsonio import json_restored, read_json
from initbench.runs.rundir import RunDirectory, csv_text, json_text

if TYPE_CHECKING:
    import pandas

    from initbench.experiments.base import ExperimentResult

SUMMARY = "summary.json"


class DamagedFileError(InitbenchError):
    """A saved file of a run directory that does not read as initbench wrote it: unparseable,
    truncated, or missing what its kind of file holds."""


def rerun_hint(directory: Path) -> str:
    """How to get a directory's files back whole: its run wrote them, so running it again writes them again."""
    return f"Run it again into a new directory: initbench run {directory / RunDirectory.CONFIG} (or restore the file from a copy)."


def damaged(path: Path, problem: str) -> DamagedFileError:
    """The one error for a damaged saved file: it names the file and what is wrong with it."""
    hint = "Restore it from a copy: the run is described by it, so it cannot be run again without it." if path.name == RunDirectory.CONFIG else rerun_hint(path.parent)
    return DamagedFileError(f"{path} is damaged or incomplete: {problem}.", hint=hint)


@dataclass(frozen=True)
class Columns:
    """What a CSV file initbench writes holds: the columns the reports read, and the columns that
    hold numbers wherever they appear (an empty, ``nan`` or ``inf`` cell is a number's cell)."""

    required: tuple[str, ...]
    numeric: tuple[str, ...]


_LAYER_NUMBERS = (
    "seed", "layer", "mean", "std", "pre_std", "frac_saturated", "frac_zero", "weight_mean", "weight_std", "fan_in",
    "grad_std", "weight_grad_std", "theory_std", "theory_pre_std", "chi1", "theory_grad_std", "centre_std",
)  # fmt: skip
_PHASE_NUMBERS = ("sigma_w2", "sigma_b2", "q_star", "chi1", "xi_c", "c_star", "predicted_depth", "measured_depth")
_LAYERS_NUMBERS = ("fan_in", "sigma_w2", "chi1", "sigma_w2_rules", "std_rules", "sigma_w2_constructor", "std_constructor", "sigma_w2_he", "std_he")
#: The CSV files the reports read, by name; any other CSV file is only checked to be whole.
TABLE_COLUMNS = {
    "layer_stats.csv": Columns(("scheme", "seed", "layer", "std", "theory_std"), _LAYER_NUMBERS),
    "histograms.csv": Columns(("scheme", "seed", "layer", "bin", "left", "right", "count"), ("seed", "layer", "bin", "left", "right", "count")),
    "train_metrics.csv": Columns(("scheme", "seed", "step", "loss", "train_acc", "test_acc"), ("seed", "step", "loss", "train_acc", "test_acc")),
    "gains.csv": Columns(("gain", "sigma_w", "std_first", "std_last"), ("sigma_w", "std_first", "std_last")),
    "phase.csv": Columns((*_PHASE_NUMBERS, "phase"), _PHASE_NUMBERS),
    "layers.csv": Columns(("module", *_LAYERS_NUMBERS), _LAYERS_NUMBERS),
}
#: The keys a JSON file the reports read must hold at its top level, by name.
JSON_KEYS = {
    RunDirectory.META: ("status",),
    "training.json": ("dataset", "task", "train_examples", "test_examples", "chance", "evaluated_steps"),
}


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
    """A CSV file's rows as dicts (:func:`parse_table`); :class:`DamagedFileError` where it does not read."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:  # as RunDirectory writes it, whatever the locale
            return parse_table(stream, path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise damaged(path, f"it does not read as CSV text ({error})") from None


def parse_table(lines: Iterable[str], source: Path) -> list[dict[str, Any]]:
    """CSV text's rows as dicts. A column whose every filled cell is a number holds numbers; any
    other column (scheme labels such as ``1e3`` among ``he``) keeps its text. The text must be a
    whole table of its kind (:data:`TABLE_COLUMNS`), else :class:`DamagedFileError` names ``source``."""
    records = [record for record in csv.reader(lines) if record]  # csv.DictReader skips blank lines too
    if not records:
        raise damaged(source, "it is empty, not even a header")
    header, body = records[0], records[1:]
    for number, record in enumerate(body, start=2):
        if len(record) != len(header):
            cut = "it was cut off there" if len(record) < len(header) else "the file is not one table"
            raise damaged(source, f"line {number} has {len(record)} cells, the header {len(header)}: {cut}")
    expected = TABLE_COLUMNS.get(source.name, Columns((), ()))
    if absent := [column for column in expected.required if column not in header]:
        raise damaged(source, f"it has no column {', '.join(absent)}")
    rows = [dict(zip(header, record, strict=True)) for record in body]
    parsed = {column: [parse_cell(row[column]) for row in rows] for column in header}
    numeric = {column: all(value is None or isinstance(value, (int, float)) for value in values) for column, values in parsed.items()}
    for column in (column for column in expected.numeric if column in header and not numeric[column]):
        line, text = next((index + 2, value) for index, value in enumerate(parsed[column]) if isinstance(value, str))
        raise damaged(source, f"line {line} has {text!r} in column {column}, which holds numbers")
    return [{column: parsed[column][index] if numeric[column] else (row[column] if row[column] != "" else None) for column in row} for index, row in enumerate(rows)]


def read_saved_json(path: Path) -> Any:
    """A JSON file of a run directory (:func:`read_json`), with the keys its kind holds (:data:`JSON_KEYS`);
    :class:`DamagedFileError` where it does not read."""
    try:
        value = read_json(path)
    except (OSError, ValueError) as error:  # undecodable bytes and bad JSON are ValueErrors, as a bad non-finite flag is
        raise damaged(path, "it is empty" if path.is_file() and not path.stat().st_size else f"it does not read as JSON ({error})") from None
    keys = JSON_KEYS.get(path.name, ())
    if path.name in (*JSON_KEYS, SUMMARY) and not isinstance(value, dict):
        raise damaged(path, f"it holds {shown_value(value)}, not a mapping")
    if absent := [key for key in keys if key not in value]:
        raise damaged(path, f"it has no {', '.join(absent)}")
    if path.name == SUMMARY and "schemes" in value and not (isinstance(value["schemes"], dict) and value["schemes"] and all(isinstance(entry, dict) for entry in value["schemes"].values())):
        raise damaged(path, f"its schemes are {shown_value(value['schemes'])}, not one entry per scheme")
    return value


def read_config(path: Path) -> dict[str, Any]:
    """A run directory's config.yaml as a mapping; :class:`DamagedFileError` where it does not read."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise damaged(path, f"it does not read as YAML ({error})") from None
    if not isinstance(config, dict):
        raise damaged(path, f"it holds {shown_value(config)}, not a mapping")
    return config


def read_arrays(path: Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file initbench wrote (no pickled objects); :class:`DamagedFileError`
    where it does not read or lacks one."""
    try:
        with path.open("rb") as stream:  # np.load leaves the file open when it fails on a path
            archive = np.load(stream, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise damaged(path, "it holds one array, not an .npz archive")
            with archive:
                arrays = dict(archive)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # np.load reads foreign bytes as a pickle, refused
        raise damaged(path, f"it does not read as an .npz archive ({error})") from None
    if absent := [name for name in names if name not in arrays]:
        raise damaged(path, f"it has no array {', '.join(absent)}")
    return arrays


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
        config = read_config(path / RunDirectory.CONFIG)
        meta = read_saved_json(path / RunDirectory.META)
        summary = read_saved_json(path / SUMMARY) if (path / SUMMARY).is_file() else None
        tables = {table.name: read_table(table) for table in sorted(path.glob("*.csv"))}
        others = {file.name: read_saved_json(file) for file in sorted(path.glob("*.json")) if file.name not in (RunDirectory.META, SUMMARY)}
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
            tables={name: parse_table(io.StringIO(csv_text(table)), path / name) for name, table in result.tables.items()},
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

