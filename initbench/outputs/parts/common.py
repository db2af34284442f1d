"""What every part of a run's report reads its files with: the saved data, CSV cells as numbers,
long-format rows as ``[seeds, steps or layers]`` arrays, and the seeds in words."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from initbench.config.loading import validate_config
from initbench.core.errors import InitbenchError
from initbench.runs.results import SUMMARY, damaged, rerun_hint
from initbench.runs.rundir import RunDirectory

if TYPE_CHECKING:
    from initbench.config.run import Config
    from initbench.outputs.document import Report
    from initbench.runs.results import RunResult


@dataclass
class Saved:
    """A run directory's saved files (``result``) and its config as this version reads it
    (``config``; None where it reads no more: a plugin not importable here, an older config).
    Nothing runs in a report, so every part still reports without it, with plainer titles."""

    result: RunResult
    config: Config | None

    @classmethod
    def of(cls, result: RunResult) -> Saved:
        try:
            return cls(result, validate_config(result.config, str(result.path / RunDirectory.CONFIG)))
        except InitbenchError:
            return cls(result, None)

    @property
    def name(self) -> str:
        return str(self.result.config.get("name", self.result.path.name))

    def has_files(self, names: Sequence[str], report: Report) -> bool:
        """Whether the directory holds each file ``names`` (a table with rows). Where not, a complete
        run is damaged (:class:`InitbenchError` naming what is missing); an unfinished one may not
        have written them yet, and the report says which."""
        missing = [self.missing_text(name) for name in names if self.missing_text(name)]
        if not missing:
            return True
        what = "; ".join(missing)
        if self.result.status == "complete":
            raise InitbenchError(f"{self.result.path} is marked complete, but {what}.", hint=rerun_hint(self.result.path))
        report.notes.append(f"Nothing to report yet: {what}.")
        return False

    def schemes(self, keys: Mapping[str, Sequence[str] | None]) -> dict[str, dict[str, Any]]:
        """summary.json's entry per scheme, each holding ``keys``: a key mapped to names is a mapping
        holding them (or null: a scheme without one, as a theory's prediction). None there: damaged."""
        schemes, path = self.result.schemes, self.result.path / SUMMARY
        if not schemes:
            raise damaged(path, "it has no schemes")
        for label, entry in schemes.items():
            for key, names in keys.items():
                if key not in entry:
                    raise damaged(path, f"its entry of {label} has no {key}")
                if names and entry[key] is not None and not (isinstance(entry[key], dict) and all(name in entry[key] for name in names)):
                    raise damaged(path, f"its entry of {label} has a {key} without {', '.join(names)}")
        return schemes

    def missing_text(self, name: str) -> str | None:
        """What is missing of the file ``name``, in words, or None where it is there whole."""
        result = self.result
        present = result.summary is not None if name == SUMMARY else name in result.tables or name in result.json_files
        if not present:
            return f"it has no {name}"
        if name.endswith(".csv") and not result.tables[name]:
            return f"its {name} has no rows"
        return None

    def seeds_text(self) -> str:
        """``median over 3 seeds``, or ``seed 0``: what the run's tables are over."""
        seeds, seed = self.result.config.get("seeds", 1), self.result.config.get("seed", 0)
        return f"median over {seeds} seeds" if seeds > 1 else f"seed {seed}"


def numbers(values: Sequence[Any]) -> np.ndarray:
    """CSV cells as floats; empty cells (None) become NaN."""
    return np.array([math.nan if value is None else float(value) for value in values], dtype=float)


def by_scheme_and_seed(rows: list[dict[str, Any]], column: str, index: str, positions: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
    """label → ``[seeds, len(positions)]`` array of ``column`` from long-format rows, seeds in the
    order they first appear; NaN where a row is missing. ``positions`` are the ``index`` values
    of the columns (default: those of the rows, in their order)."""
    columns = {value: number for number, value in enumerate(dict.fromkeys(row[index] for row in rows) if positions is None else positions)}
    grouped: dict[str, dict[Any, dict[Any, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["scheme"], {}).setdefault(row["seed"], {})[row[index]] = row[column]
    arrays = {}
    for label, seeds in grouped.items():
        values = np.full((len(seeds), len(columns)), math.nan)
        for seed_row, per_index in enumerate(seeds.values()):
            for key, value in per_index.items():
                if key in columns:
                    values[seed_row, columns[key]] = math.nan if value is None else float(value)
        arrays[label] = values
    return arrays


def nan_median(values: np.ndarray) -> float:
    """Median over seeds ignoring NaN seeds; NaN only when every seed is NaN."""
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan
