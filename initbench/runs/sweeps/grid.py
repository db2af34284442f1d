"""A sweep's grid: axes from a ``sweep:`` section or ``KEY=V1,V2`` arguments, the points they
span (names, values, overrides) and the ``sweep.json`` index every shard shares."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initbench.config.loading import apply_overrides, read_yaml, validate_config
from initbench.config.run import Config
from initbench.core.errors import InitbenchError, shown_value
from initbench.core.registry import parse_scalar
from initbench.runs.sweepdir import SweepDirectory

INDEX_FORMAT = "initbench-sweep/1"
KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
MAX_NAME = 100  # characters of a point's name before it is shortened and hashed


# --- Axes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One swept key and its values, in order."""

    key: str
    values: tuple[Any, ...]


def check_axis(axis: Axis, source: str) -> Axis:
    """``axis``, if its key is a dotted path and its values are non-empty and distinct."""
    if not KEY_PATTERN.fullmatch(axis.key) or axis.key.split(".")[0] == "sweep":
        raise InitbenchError(
            f"Sweep axis '{axis.key}' ({source}) is not a config key.",
            hint="Sweep keys are dotted config keys, for example model.depth or init.scheme.",
        )
    if not axis.values:
        raise InitbenchError(f"Sweep axis '{axis.key}' ({source}) has no values.", hint=f"For example {axis.key}=V1,V2.")
    texts = [canonical(value) for value in axis.values]
    repeated = sorted({value_text(value) for value, text in zip(axis.values, texts) if texts.count(text) > 1})
    if repeated:
        raise InitbenchError(f"Sweep axis '{axis.key}' ({source}) lists {', '.join(repeated)} twice.")
    return axis


def parse_axis(argument: str) -> Axis:
    """A command-line axis ``KEY=V1,V2,...`` (or ``KEY=V1;V2`` for values with commas in them).

    Each value is a YAML scalar, as in overrides: ``model.depth=10,30`` gives the integers 10 and 30.
    A trailing ``;`` makes one value of everything before it: ``init.scheme='normal:mean=0,std=2;'``.
    """
    key, sep, text = argument.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InitbenchError(
            f"Cannot read sweep axis '{argument}'.", hint="Write axes as KEY=V1,V2,..., for example model.depth=10,30,100."
        )
    separator = ";" if ";" in text else ","
    items = [item.strip() for item in text.split(separator)]
    if separator == ";" and len(items) > 1 and items[-1] == "":
        items.pop()
    if any(item == "" for item in items):
        raise InitbenchError(f"Sweep axis '{argument}' has an empty value.", hint=f"Write {key}=V1,V2,... with no empty entries.")
    if separator == ",":
        for item in items[1:]:
            if "=" in item and ":" not in item:
                raise InitbenchError(
                    f"Sweep axis '{argument}': '{item}' looks like an option cut off the value before it by a comma.",
                    hint=f"Separate values that contain commas with ';' instead, for example {key}='normal:mean=0,std=2;he'.",
                )
    return check_axis(Axis(key, tuple(parse_scalar(item, f"sweep axis {key}") for item in items)), "command line")


def section_axes(section: Any) -> list[Axis]:
    """The axes of a config's ``sweep:`` section: dotted keys (or nested mappings) to lists."""
    if not isinstance(section, dict) or not section:
        raise InitbenchError(
            "The config's sweep: section must map config keys to lists of values.",
            hint="For example sweep: {model.depth: [10, 30, 100], init.scheme: [xavier, he]}.",
        )
    axes: list[Axis] = []

    def walk(prefix: str, mapping: dict[Any, Any]) -> None:
        for key, value in mapping.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                walk(path, value)
            elif isinstance(value, list):
                axes.append(check_axis(Axis(path, tuple(value)), "sweep: section"))
            else:
                raise InitbenchError(f"sweep.{path}: give a list of values, not {shown_value(value)}.", hint=f"For example {path}: [{shown_value(value)}, ...].")

    walk("", section)
    return axes


def split_sweep_section(raw: dict[str, Any]) -> tuple[dict[str, Any], list[Axis]]:
    """A raw config without its ``sweep:`` section, and that section's axes (none if absent)."""
    base = dict(raw)
    if "sweep" not in base:
        return base, []
    return base, section_axes(base.pop("sweep"))


def check_no_sweep_section(raw: dict[str, Any], path: Path) -> None:
    """Refuse to ``initbench run`` the config ``raw`` (read from ``path``) that describes a sweep."""
    if "sweep" in raw:
        raise InitbenchError(
            f"Config '{path}' has a sweep: section, so it describes many runs.",
            hint=f"Run it with `initbench sweep {path}`; to run the base config alone, remove the sweep: section.",
        )


# --- Values, overrides and names ----------------------------------------------------------


def canonical(value: Any) -> str:
    """A value as compact, key-sorted JSON: equal values, equal text (for hashing and comparing)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def value_text(value: Any) -> str:
    """A value as a person would write it: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


#: What :func:`reads_back` gives for text the override parser refuses: equal to no value.
UNREADABLE = object()


def reads_back(text: str, source: str) -> Any:
    """What the override parser reads ``text`` as, or ``UNREADABLE``."""
    try:
        return parse_scalar(text, source)
    except InitbenchError:
        return UNREADABLE


def override_text(key: str, value: Any) -> str:
    """``KEY=TEXT`` such that ``initbench run``'s override parser reads ``TEXT`` back as ``value``.

    Strings stay bare unless YAML would read them as something else (``'yes'``, ``'1e3'``), which are
    quoted; mappings and lists are written as JSON, which is YAML flow syntax.
    """
    source = f"sweep value of '{key}'"
    text = value if isinstance(value, str) and reads_back(value, source) == value else json.dumps(value, ensure_ascii=False)
    if reads_back(text, source) != value:
        raise InitbenchError(
            f"Sweep value {shown_value(value)} of '{key}' cannot be written as an override that reads back the same.",
            hint="Use a plain number, name, or a YAML list or mapping.",
        )
    return f"{key}={text}"


def short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def point_names(axes: Sequence[Axis], combinations: Sequence[tuple[Any, ...]]) -> list[str]:
    """Stable, filesystem-safe names, ``scheme-he_depth-30``, one per combination of axis values.

    Only axes with more than one value name a point (all of them when none varies). A key is
    shortened to its last part (``model.depth`` → ``depth``) unless two named axes share it. A
    short hash of the point's values is appended where names clash or exceed ``MAX_NAME``.
    """
    named = [index for index, axis in enumerate(axes) if len(axis.values) > 1] or list(range(len(axes)))
    last = [axes[index].key.split(".")[-1] for index in named]
    shorts = [part if last.count(part) == 1 else axes[index].key for part, index in zip(last, named)]
    names, hashes = [], []
    for values in combinations:
        parts = [f"{short}-{UNSAFE.sub('-', value_text(values[index])).strip('-') or 'v'}" for short, index in zip(shorts, named)]
        names.append("_".join(parts))
        hashes.append(short_hash(canonical([[axis.key, value] for axis, value in zip(axes, values)])))
    counts = Counter(names)
    return [f"{name[: MAX_NAME - 9]}-{digest}" if counts[name] > 1 or len(name) > MAX_NAME else name for name, digest in zip(names, hashes)]

# --- The sweep ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One grid point: its name, its value per axis key, and the overrides that make its config."""

    name: str
    values: dict[str, Any]
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Sweep:
    """A base config, its axes (in point order) and the grid points they span."""

    name: str
    base: dict[str, Any]
    axes: tuple[Axis, ...]
    points: tuple[Point, ...]

    @classmethod
    def expand(cls, base: dict[str, Any], axes: Sequence[Axis], source: str, options: Mapping[str, str] | None = None) -> Sweep:
        """The grid over ``axes`` on ``base``; the base must be a valid config by itself (its
        errors name the command-line ``options`` that set a key, as in :func:`validate_config`)."""
        if not axes:
            raise InitbenchError("Nothing to sweep: no axes given.", hint="Add KEY=V1,V2,... arguments, or a sweep: section to the config.")
        name = validate_config(base, source, options).name
        ordered = tuple(sorted(axes, key=lambda axis: axis.key.split(".")[0] != "init"))  # stable: init axes slowest
        combinations = list(itertools.product(*(axis.values for axis in ordered)))
        names = point_names(ordered, combinations)
        points = tuple(
            Point(
                name,
                {axis.key: value for axis, value in zip(ordered, values)},
                tuple(override_text(axis.key, value) for axis, value in zip(ordered, values)),
            )
            for name, values in zip(names, combinations)
        )
        return cls(name, base, ordered, points)

    @classmethod
    def from_config(cls, path: Path, arguments: Sequence[str], fixed: Sequence[str] = (), options: Mapping[str, str] | None = None) -> Sweep:
        """The sweep of the config at ``path``: its ``sweep:`` section plus command-line axes.

        ``fixed`` are plain ``KEY=VALUE`` overrides of the base (``--device``, ``--seeds``), set by
        the command-line ``options`` (``{"seeds": "--seeds"}``) that errors name.
        """
        base, axes = split_sweep_section(read_yaml(path))
        for axis in map(parse_axis, arguments):
            axes = [existing for existing in axes if existing.key != axis.key] + [axis]
        return cls.expand(apply_overrides(base, list(fixed)), axes, str(path), options)

    def index(self) -> dict[str, Any]:
        """``sweep.json``'s content: the same for every shard (no times, hosts or shard numbers)."""
        return {
            "format": INDEX_FORMAT,
            "name": self.name,
            "base": self.base,
            "axes": [{"key": axis.key, "values": list(axis.values)} for axis in self.axes],
            "points": [{"name": point.name, "values": point.values, "overrides": list(point.overrides)} for point in self.points],
        }

    def index_text(self) -> str:
        return json.dumps(self.index(), indent=2, ensure_ascii=False, default=str) + "\n"

    @classmethod
    def load(cls, path: Path) -> Sweep:
        """The sweep whose directory is ``path``, from its ``sweep.json``."""
        index_path = path / SweepDirectory.INDEX
        if not path.exists():
            raise InitbenchError(f"Sweep directory '{path}' does not exist.", hint="Give the --out directory of an initbench sweep.")
        if not index_path.is_file():
            looks_like_run = (path / "meta.json").is_file()
            raise InitbenchError(
                f"'{path}' is not a sweep directory: it has no {SweepDirectory.INDEX}.",
                hint="That is a run directory of initbench run or compare; report reads directories made by initbench sweep."
                if looks_like_run
                else "Give the --out directory of an initbench sweep.",
            )
        try:
            index = json.loads(index_path.read_text())
            if index.get("format") != INDEX_FORMAT:
                raise ValueError(f"format {index.get('format')!r}, expected {INDEX_FORMAT!r}")
            axes = [Axis(axis["key"], tuple(axis["values"])) for axis in index["axes"]]
            sweep = cls.expand(index["base"], axes, f"{index_path} (base)")
            stored = [point["name"] for point in index["points"]]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InitbenchError(f"Cannot read the sweep index {index_path}: {error}.") from None
        if stored != [point.name for point in sweep.points]:
            raise InitbenchError(
                f"The sweep index {index_path} lists points this version of initbench names differently.",
                hint="Resume it with the initbench version that started it.",
            )
        return sweep

    def point_config(self, point: Point) -> Config:
        return validate_config(
            apply_overrides(self.base, list(point.overrides)), f"sweep point '{point.name}' ({' '.join(point.overrides)})"
        )

    def configs(self) -> list[Config]:
        """Every point's validated config; the first invalid point's problem is a user error."""
        configs: list[Config] = []
        errors: list[InitbenchError] = []
        for point in self.points:
            try:
                configs.append(self.point_config(point))
            except InitbenchError as error:
                errors.append(error)
        if errors:
            more = f"\n({len(errors) - 1} more of the sweep's {len(self.points)} points are invalid.)" if len(errors) > 1 else ""
            raise InitbenchError(errors[0].message + more, hint=errors[0].hint)
        return configs
