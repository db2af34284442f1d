"""Sweeps: a grid over any config keys, one run directory per grid point, shardable across machines.

    initbench sweep configs/relu_kaiming.yaml model.depth=10,30,100 init.scheme=xavier,he --out results/depth
    initbench sweep base.yaml model.depth=10,30,100 --out /shared/depth --shard 3/8      # one of 8 machines
    initbench sweep base.yaml model.depth=10,30,100 --out /shared/depth --launcher submitit --partition gpu
    initbench sweep results/depth                        # resume: run whatever is not complete yet
    initbench report results/depth                       # merge what finished into tables and plots

**Axes.** A config's ``sweep:`` section maps dotted keys to lists of values (nested mappings are
flattened, so ``sweep: {model: {depth: [10, 30]}}`` is ``model.depth: [10, 30]``); on the command
line each ``KEY=V1,V2,...`` is one more axis (it replaces a section axis with the same key). Values
are read like overrides, as YAML scalars. A value that contains a comma (``normal:mean=0,std=2``)
needs a YAML list in the section, or ``;`` between the values on the command line:
``init.scheme='normal:mean=0,std=2;he'`` (a single such value: ``init.scheme='normal:mean=0,std=2;'``).

**Points.** The grid is the product of the axes. Each point is the base config (the file without
its ``sweep:`` section) with one ``KEY=VALUE`` override per axis, applied exactly as ``initbench
run`` applies overrides, so a point's ``config.yaml`` (or ``base.yaml`` plus the point's overrides)
reproduces it with ``initbench run``. Every point is validated before anything runs. Points are
ordered with the ``init.*`` axes varying slowest, then the other axes in the order given; each is
named after the values of the axes that vary, ``scheme-he_depth-30`` (characters other than letters,
digits, ``.``, ``+`` and ``-`` become ``-``; a short hash is added only where two names would clash or
a name would be long).

**The sweep directory** (``--out``, default ``results/<name>-sweep-<timestamp>``)::

    sweep.json          the index: base config, axes, every point's name, values and overrides
    base.yaml           the base config, runnable with a point's overrides
    points/<name>/      one ordinary run directory per point (config.yaml, meta.json, CSVs, plots)
    submitit/           job logs, with --launcher submitit
    report-<time>/      what ``initbench report`` writes

Shards and reruns share it: ``sweep.json`` is written only if absent and must equal the one there,
a point already complete is skipped, and an unfinished one is moved aside (see
:class:`~initbench.rundir.SweepDirectory`) and run again.

**Sharding.** ``--shard I/N`` runs the points ``I, I+N, I+2N, ...`` of the fixed order, so N machines
(a SLURM ``--array=0-(N-1)``, or any scheduler) split a sweep with no coordination.

**Stacking.** Within a shard, points whose configs differ only in ``init`` (its scheme and the
scheme's options) share a shape: they run as one stacked pass (all their schemes × seeds
together) and are then written as separate point directories, each equal to its run alone (up to
the rounding of the batched matmul, see :mod:`initbench.engine`). With the ``init`` axes slowest,
every shard holds whole stacks whenever N divides the number of combinations of the other axes.
Training points stack the same way: their runs train as one stacked model, each exactly as alone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from initbench.config import Config, apply_overrides, read_yaml, validate_config
from initbench.errors import InitbenchError, shown_value
from initbench.registry import parse_scalar
from initbench.rundir import RESULTS_ROOT, RunDirectory, SweepDirectory, command_line

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from initbench.experiments import ExperimentResult, Progress

INDEX_FORMAT = "initbench-sweep/1"
KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
MAX_NAME = 100  # characters of a point's name before it is shortened and hashed
LAUNCHERS = ("local", "submitit", "submitit-local")


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


def check_no_sweep_section(path: Path) -> None:
    """Refuse to ``initbench run`` a config that describes a sweep, and say what to do instead."""
    if "sweep" in read_yaml(path):
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
    def expand(cls, base: dict[str, Any], axes: Sequence[Axis], source: str) -> Sweep:
        """The grid over ``axes`` on ``base``; the base must be a valid config by itself."""
        if not axes:
            raise InitbenchError("Nothing to sweep: no axes given.", hint="Add KEY=V1,V2,... arguments, or a sweep: section to the config.")
        name = validate_config(base, source).name
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
    def from_config(cls, path: Path, arguments: Sequence[str], fixed: Sequence[str] = ()) -> Sweep:
        """The sweep of the config at ``path``: its ``sweep:`` section plus command-line axes.

        ``fixed`` are plain ``KEY=VALUE`` overrides of the base (``--device``, ``--seeds``).
        """
        base, axes = split_sweep_section(read_yaml(path))
        for axis in map(parse_axis, arguments):
            axes = [existing for existing in axes if existing.key != axis.key] + [axis]
        return cls.expand(apply_overrides(base, list(fixed)), axes, str(path))

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


def open_sweep_directory(sweep: Sweep, out: Path | None, root: Path = RESULTS_ROOT) -> SweepDirectory:
    """The sweep's directory with its index in place: created, or checked to hold this same sweep."""
    directory = SweepDirectory.create(out, sweep.name, root)
    text = sweep.index_text()
    if not directory.write_once(SweepDirectory.INDEX, text):
        existing = (directory.path / SweepDirectory.INDEX).read_text()
        if existing != text:
            try:
                stored = json.loads(existing)
            except ValueError:
                stored = {}
            differs = [key for key, value in sweep.index().items() if json.loads(json.dumps(value, default=str)) != stored.get(key)]
            raise InitbenchError(
                f"{directory.path} holds a different sweep: its {SweepDirectory.INDEX} differs in {', '.join(differs) or 'its text'}.",
                hint=f"Use a new --out for a new sweep; to resume this one, run `initbench sweep {directory.path}`.",
            )
    directory.write_once(SweepDirectory.BASE, yaml.safe_dump(sweep.base, sort_keys=False))
    return directory


# --- Shards and stacks --------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the points ``index, index + count, ...`` of the sweep."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise InitbenchError(
                f"--shard {text}: give I/N with 0 ≤ I < N, for example 0/4.",
                hint="With a SLURM array, --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT and --array=0-(N-1).",
            )
        return cls(int(match[1]), int(match[2]))

    def select(self, total: int) -> list[int]:
        return list(range(self.index, total, self.count))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def labels(config: Config) -> list[str]:
    return [label for label, _ in config.init.build_schemes()]


def stack_key(config: Config) -> str | None:
    """Points with equal keys share a shape and can run stacked; None: this point runs alone.

    The key is the whole config except ``init`` (its scheme, schemes and the scheme's options),
    whose bias init stays in. Every experiment that can measure and analyse separately
    (:class:`~initbench.experiments.StackableExperiment`) stacks.
    """
    from initbench.experiments import EXPERIMENTS, StackableExperiment, load_experiments

    load_experiments()
    if not issubclass(EXPERIMENTS.get(config.experiment), StackableExperiment):
        return None
    data = config.model_dump(mode="json")
    data["init"] = {"bias": config.init.bias}
    data["experiment"] = EXPERIMENTS.canonical(config.experiment)
    return canonical(data)


def stacks(configs: Sequence[Config], indices: Iterable[int]) -> list[list[int]]:
    """``indices`` grouped into stacks of points that share a shape, in order of first point.

    A point whose scheme labels repeat one already in the stack (the same runs twice) starts a new one.
    """
    groups: list[list[int]] = []
    open_groups: dict[str, list[tuple[list[int], set[str]]]] = {}  # key -> (members, their labels)
    for index in indices:
        key = stack_key(configs[index])
        if key is None:
            groups.append([index])
            continue
        mine = set(labels(configs[index]))
        for members, taken in open_groups.setdefault(key, []):
            if not mine & taken:
                members.append(index)
                taken |= mine
                break
        else:
            members = [index]
            open_groups[key].append((members, set(mine)))
            groups.append(members)
    return groups


def fits_in_memory(configs: Sequence[Config], group: list[int]) -> bool:
    """Whether a stack's pass fits the device (each point alone was checked before anything ran).

    Only signal propagation has activations of width × batch per run; training nets are small.
    """
    from initbench.engine import check_memory, propagation_memory_estimate, resolve_device, resolve_dtype
    from initbench.experiments import EXPERIMENTS
    from initbench.experiments.propagation import Propagation

    config = configs[group[0]]
    if not issubclass(EXPERIMENTS.get(config.experiment), Propagation):
        return True
    runs = sum(len(labels(configs[index])) * configs[index].seeds for index in group)
    backward = getattr(EXPERIMENTS.get(config.experiment), "backward", False)
    estimate = propagation_memory_estimate(runs, config.input.batch, config.model.width, config.model.depth, backward, resolve_dtype(config.dtype))
    try:
        check_memory(estimate, resolve_device(config.device))
    except InitbenchError:
        return False
    return True


# --- Running a shard ----------------------------------------------------------------------------


def point_status(directory: SweepDirectory, name: str) -> str:
    """``missing`` (no directory), the status in its meta.json, or ``incomplete`` (no readable meta.json)."""
    path = directory.point_path(name)
    if not path.is_dir():
        return "missing"
    try:
        return str(json.loads((path / "meta.json").read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return "incomplete"


def live_elsewhere(directory: SweepDirectory, name: str) -> int | None:
    """The pid of a live process on this host that is running the point, if there is one.

    A ``running`` point on another host cannot be checked: it is taken for a killed job (a SLURM
    timeout kills without a chance to record ``interrupted``) and run again.
    """
    try:
        meta = json.loads((directory.point_path(name) / "meta.json").read_text())
        pid = int(meta["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if meta.get("host") != socket.gethostname() or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


@dataclass
class ShardOutcome:
    """What one shard did, by point name."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def claim(directory: SweepDirectory, name: str, log: Callable[[str], None], outcome: ShardOutcome) -> RunDirectory | None:
    """The point's fresh run directory, moving an unfinished attempt aside; None if not to run now."""
    status = point_status(directory, name)
    if status == "complete":
        outcome.skipped.append(name)
        log(f"Skipped {name}: already complete.")
        return None
    if status == "running" and (pid := live_elsewhere(directory, name)) is not None:
        outcome.busy.append(name)
        log(f"Skipped {name}: still running in process {pid} on this host.")
        return None
    if status != "missing":
        try:
            moved = directory.set_aside(name, status if status.isalpha() else "incomplete")
        except FileNotFoundError:  # another process moved it first and now runs it
            outcome.busy.append(name)
            log(f"Skipped {name}: another process took it over.")
            return None
        log(f"Moved the {status} attempt at {name} aside to {moved.name}; running it again.")
    run_directory = directory.claim_point(name)
    if run_directory is None:
        outcome.busy.append(name)
        log(f"Skipped {name}: another process claimed it first.")
    return run_directory


def run_stack(
    directory: SweepDirectory,
    sweep: Sweep,
    configs: Sequence[Config],
    group: list[int],
    progress: Progress,
    log: Callable[[str], None],
    outcome: ShardOutcome,
    command: list[str],
) -> None:
    """Run one stack of points (or one point) and write each point's run directory.

    Mirrors :func:`initbench.runner.execute`: meta.json says ``running`` before the work, then
    ``complete``, ``interrupted`` or ``failed`` (every point of a stack fails together if the
    shared pass fails). A failure is recorded and raised; the shard decides whether to go on.
    """
    from initbench.engine import resolve_device, resolve_dtype
    from initbench.experiments import EXPERIMENTS, RunContext, StackableExperiment, build_runs

    experiment = EXPERIMENTS.get(configs[group[0]].experiment)()
    device = resolve_device(configs[group[0]].device)
    claimed = [
        (index, run_directory) for index in group if (run_directory := claim(directory, sweep.points[index].name, log, outcome)) is not None
    ]
    if not claimed:
        return
    names = [sweep.points[index].name for index, _ in claimed]
    first = configs[claimed[0][0]]
    context = RunContext(config=first, device=device, dtype=resolve_dtype(first.dtype), progress=progress)
    log(f"Running {', '.join(names)}" + (f" (stacked: {len(names)} points in one pass)" if len(names) > 1 else "") + ".")
    pending: list[tuple[int, RunDirectory]] = []
    try:
        for index, run_directory in claimed:
            extra = {
                "sweep": str(directory.path.resolve()),
                "point": sweep.points[index].name,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
            if len(claimed) > 1:
                extra["stacked_with"] = [name for name in names if name != sweep.points[index].name]
            run_directory.begin(configs[index].to_yaml(), str(device), configs[index].dtype, command, extra)
            pending.append((index, run_directory))
        results: list[ExperimentResult]
        if len(claimed) == 1:
            results = [experiment.run(context)]
        else:
            assert isinstance(experiment, StackableExperiment)  # only these stack (see stack_key)
            activation = first.model.build_activation()
            record = experiment.measure(context, [run for index, _ in claimed for run in build_runs(configs[index], activation)])
            results = [experiment.analyse(configs[index], record.subset(labels(configs[index]))) for index, _ in claimed]
        for (index, run_directory), result in zip(claimed, results):
            config = configs[index]
            run_directory.save(result, title=f"initbench {config.experiment}: {config.name}")
            run_directory.finish("complete")
            pending.remove((index, run_directory))
            outcome.ran.append(sweep.points[index].name)
    except KeyboardInterrupt:
        for _, run_directory in pending:
            run_directory.finish("interrupted")
        raise
    except BaseException as error:
        for index, run_directory in pending:
            run_directory.finish("failed", error=f"{type(error).__name__}: {error}")
            outcome.failed.append(sweep.points[index].name)
        raise


def run_shard(
    path: Path,
    shard: Shard = Shard(),
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    command: list[str] | None = None,
) -> ShardOutcome:
    """Run shard ``shard`` of the sweep in directory ``path``: the one function every launcher calls.

    Everything is read from the directory's ``sweep.json``, so a job on another machine needs only
    the path. Every point of the shard is checked (device, memory, dataset) before any runs. Points
    already complete are skipped; the rest run in stacks. A stack that fails is recorded (its
    points' meta.json say ``failed``) and the shard goes on with the next; an interrupt stops it.
    """
    from initbench.engine import resolve_device
    from initbench.experiments import EXPERIMENTS, SilentProgress, load_experiments

    load_experiments()
    directory = SweepDirectory(path)
    sweep = Sweep.load(path)
    configs = sweep.configs()
    selected = shard.select(len(sweep.points))
    for index in selected:
        config = configs[index]
        EXPERIMENTS.get(config.experiment)().check(config, resolve_device(config.device))
    outcome = ShardOutcome()
    if not selected:
        log(f"Shard {shard} has no points: the sweep has {len(sweep.points)}.")
        return outcome
    todo = [index for index in selected if point_status(directory, sweep.points[index].name) != "complete"]
    waiting = set(todo)
    for index in selected:
        if index not in waiting:
            outcome.skipped.append(sweep.points[index].name)
            log(f"Skipped {sweep.points[index].name}: already complete.")
    for group in stacks(configs, todo):
        parts = [group] if len(group) == 1 or fits_in_memory(configs, group) else [[index] for index in group]
        for part in parts:
            try:
                run_stack(directory, sweep, configs, part, progress or SilentProgress(), log, outcome, command or command_line())
            except Exception as error:  # recorded in the points' meta.json; the other stacks still run
                names = [sweep.points[index].name for index in part]
                accounted = {*outcome.ran, *outcome.skipped, *outcome.busy, *outcome.failed}
                outcome.failed += [name for name in names if name not in accounted]
                log(f"Failed {', '.join(names)}: {type(error).__name__}: {error}")
    return outcome


def shard_job(path: str, index: int, count: int, command: list[str]) -> dict[str, list[str]]:
    """One array job of ``--launcher submitit``: :func:`run_shard`, failing the job if a point failed."""
    outcome = run_shard(Path(path), Shard(index, count), command=command)
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} points failed: {', '.join(outcome.failed)}; their meta.json has the error.")
    return {"ran": outcome.ran, "skipped": outcome.skipped, "busy": outcome.busy}


# --- Launching on a cluster -------------------------------------------------------------


def require_submitit() -> Any:
    """The submitit module, imported only when a sweep is submitted; its absence is a user error."""
    try:
        import submitit
    except ImportError:
        raise InitbenchError(
            "--launcher submitit needs the submitit package.", hint='Install it with: pip install "initbench[cluster]"'
        ) from None
    return submitit


def submit(
    path: Path,
    jobs: int,
    cluster: str | None = None,
    partition: str | None = None,
    timeout_min: int | None = None,
    gpus: int | None = None,
    command: list[str] | None = None,
) -> list[Any]:
    """Submit the sweep in ``path`` as one job array of ``jobs`` shards through submitit.

    Each array task runs :func:`shard_job` (shard i of ``jobs``), the same code as ``--shard``.
    ``cluster`` picks submitit's executor: None detects SLURM (and falls back to local processes
    where there is none), ``"local"`` always runs local processes. Logs go to ``path/submitit``.
    Returns the submitit jobs.
    """
    submitit = require_submitit()
    path = path.resolve()  # jobs may start in another working directory
    executor = submitit.AutoExecutor(folder=path / "submitit", cluster=cluster)
    parameters: dict[str, Any] = {
        "name": f"initbench-{path.name}",
        "timeout_min": timeout_min,
        "gpus_per_node": gpus,
        "slurm_partition": partition,
    }
    executor.update_parameters(**{key: value for key, value in parameters.items() if value is not None})
    every = command or command_line()
    return executor.map_array(shard_job, [str(path)] * jobs, range(jobs), [jobs] * jobs, [every] * jobs)


# --- Reporting ------------------------------------------------------------------------------------


#: Report columns read from each point's resolved config, before the other swept keys.
CONFIG_COLUMNS = ("experiment", "activation", "depth", "width", "seeds")
#: Axes that these columns (or the scheme column) already show.
SHOWN_AXES = {"experiment", "seeds", "model.activation", "model.depth", "model.width", "model.hidden", "init.scheme", "init.schemes"}
PROPAGATION_METRICS = ("std_first", "std_last", "theory_std_last", "chi1", "phase", "verdict", "first_nonfinite_layer")
GRADIENT_METRICS = ("grad_std_first", "grad_std_last", "grad_ratio", "grad_verdict")
TRAIN_METRICS = ("loss", "train_acc", "test_acc", "steps_to_target", "diverged")


@dataclass
class SweepReport:
    """What a sweep directory holds now: one row per (complete point, scheme), and what is missing."""

    sweep: Sweep
    path: Path
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    missing: list[tuple[Point, str]]  # (point, status) for every point not complete
    metric: str | None  # the column the figures show: std_last, test_acc or loss

    @property
    def complete(self) -> int:
        return len(self.sweep.points) - len(self.missing)


def number(value: Any) -> Any:
    """JSON's ``"nan"``/``"inf"``/``"-inf"`` strings back to floats; other values unchanged."""
    return float(value) if value in ("nan", "inf", "-inf") else value


def summary_row(point: Point, label: str, config: dict[str, Any], entry: dict[str, Any], axes: Sequence[Axis]) -> dict[str, Any]:
    """One report row: the point, the scheme, the network, other swept keys, then the results."""
    model = config.get("model", {})
    hidden = model.get("hidden")
    row: dict[str, Any] = {
        "point": point.name,
        "scheme": label,
        "experiment": config.get("experiment"),
        "activation": model.get("activation"),
        "depth": len(hidden) if hidden else model.get("depth"),
        "width": "x".join(map(str, hidden)) if hidden else model.get("width"),
        "seeds": config.get("seeds"),
    }
    row.update({axis.key: value_text(point.values[axis.key]) for axis in axes if axis.key not in SHOWN_AXES})
    theory = entry.get("theory") or {}
    row.update({key: number(entry.get(key)) for key in PROPAGATION_METRICS + GRADIENT_METRICS if key in entry})
    if "std_last" in entry:
        row.update(theory_std_last=number(theory.get("theory_std_last")), chi1=number(theory.get("chi1")), phase=theory.get("phase"))
    for key in ("loss", "train_acc", "test_acc"):
        if key in entry:
            row[key] = number(entry[key]["median"])
    if "diverged" in entry:
        row.update(steps_to_target=entry.get("steps_to_target"), diverged=entry["diverged"])
    return row


def collect(path: Path) -> SweepReport:
    """Read the sweep in ``path``: every complete point's config and summary, and the missing points."""
    sweep = Sweep.load(path)
    directory = SweepDirectory(path)
    rows: list[dict[str, Any]] = []
    missing: list[tuple[Point, str]] = []
    for point in sweep.points:
        status = point_status(directory, point.name)
        if status != "complete":
            missing.append((point, status))
            continue
        folder = directory.point_path(point.name)
        try:
            config = yaml.safe_load((folder / "config.yaml").read_text())
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError, yaml.YAMLError):
            missing.append((point, "unreadable"))
            continue
        rows += [summary_row(point, label, config, entry, sweep.axes) for label, entry in summary.get("schemes", {}).items()]
    leading = ("point", "scheme", *CONFIG_COLUMNS, *(axis.key for axis in sweep.axes if axis.key not in SHOWN_AXES))
    results = [key for key in PROPAGATION_METRICS + GRADIENT_METRICS + TRAIN_METRICS if any(key in row for row in rows)]
    metric = next((key for key in ("std_last", "test_acc", "loss") if any(isinstance(row.get(key), (int, float)) for row in rows)), None)
    return SweepReport(sweep, path, (*leading, *results), rows, missing, metric)


def result_columns() -> set[str]:
    return set(PROPAGATION_METRICS + GRADIENT_METRICS + TRAIN_METRICS)


def varying(rows: Sequence[dict[str, Any]], columns: Iterable[str]) -> list[str]:
    """The columns that take more than one value over ``rows``."""
    return [column for column in columns if len({value_text(row.get(column)) for row in rows}) > 1]


def series_label(row: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(
        f"{value_text(row.get(key))}" if key in ("scheme", "activation") else f"{key}={value_text(row.get(key))}" for key in keys
    )


def by_depth_figure(report: SweepReport) -> Figure:
    """The metric at the last layer (or after training) against depth, one line per other setting.

    Lines are keyed by scheme × activation and any other key that varies; log scales on both axes
    for std (depths usually span decades). Non-finite values are drawn as ✕ on the top edge and zeros
    as ▼ on the bottom edge, as in ``std_by_layer.png``.
    """
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    from initbench.plots import color

    assert report.metric is not None
    rows = [row for row in report.rows if isinstance(row.get("depth"), int) and report.metric in row]
    keys = [
        key
        for key in varying(rows, [column for column in report.columns if column not in (report.metric, "point", "depth")])
        if key not in result_columns()
    ]
    lines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault(series_label(row, keys) or report.metric, []).append(row)
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.add_subplot()
    log = report.metric == "std_last"
    if log:
        axes.set_yscale("log")
    axes.set_xscale("log")
    edge = blended_transform_factory(axes.transData, axes.transAxes)
    for index, (label, members) in enumerate(lines.items()):
        members = sorted(members, key=lambda row: row["depth"])
        depths = [row["depth"] for row in members]
        values = [float(row[report.metric]) for row in members]
        shown = [value if math.isfinite(value) and (value > 0 or not log) else math.nan for value in values]
        axes.plot(depths, shown, "o-", color=color(index), lw=2, label=label)
        for depth, value in zip(depths, values):
            if not math.isfinite(value):
                axes.plot([depth], [0.98], "x", color=color(index), ms=7, transform=edge, clip_on=False)
            elif log and value == 0:
                axes.plot([depth], [0.02], "v", color=color(index), ms=7, transform=edge, clip_on=False)
    if log and not any(
        isinstance(row[report.metric], float) and math.isfinite(row[report.metric]) and row[report.metric] > 0 for row in rows
    ):
        axes.set_ylim(1e-3, 1e3)
    from matplotlib.ticker import NullLocator

    depths = sorted({row["depth"] for row in rows})
    axes.set_xticks(depths, [str(depth) for depth in depths])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xlabel("depth (layers)")
    axes.set_ylabel({"std_last": "std of φ(h) at the last layer", "test_acc": "test accuracy", "loss": "final loss"}[report.metric])
    axes.set_title(f"{report.sweep.name}: {report.metric} against depth (median over seeds; ✕ non-finite, ▼ zero)")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return figure


def heatmap_figure(report: SweepReport) -> Figure:
    """Scheme × activation, coloured by log10 std at the last layer (or test accuracy, or loss).

    One panel per combination of the other keys that vary (depth, width, ...). Each cell shows its
    value and verdict; non-finite cells are grey and say so.
    """
    import numpy as np
    from matplotlib.figure import Figure

    assert report.metric is not None
    rows = [row for row in report.rows if report.metric in row]
    others = [
        key
        for key in varying(rows, [column for column in report.columns if column not in ("point", "scheme", "activation")])
        if key not in result_columns()
    ]
    panels: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        panels.setdefault(series_label(row, others), []).append(row)
    schemes = list(dict.fromkeys(row["scheme"] for row in rows))
    activations = list(dict.fromkeys(str(row["activation"]) for row in rows))
    log = report.metric == "std_last"
    columns = min(len(panels), 3)
    grid_rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(1.6 + 1.9 * len(activations) * columns, 1.2 + 0.55 * len(schemes) * grid_rows + 0.6), layout="constrained")
    image = None
    for number_, (title, members) in enumerate(panels.items()):
        axes = figure.add_subplot(grid_rows, columns, number_ + 1)
        values = np.full((len(schemes), len(activations)), np.nan)
        notes = [["" for _ in activations] for _ in schemes]
        for row in members:
            r, c = schemes.index(row["scheme"]), activations.index(str(row["activation"]))
            value = float(row[report.metric])
            verdict = row.get("verdict") or ("" if row.get("diverged") in (None, 0) else "diverged")
            if log:
                values[r, c] = math.log10(value) if math.isfinite(value) and value > 0 else np.nan
                notes[r][c] = ("non-finite" if not math.isfinite(value) else "0" if value == 0 else f"{value:.2g}") + (
                    f"\n{verdict}" if verdict else ""
                )
            else:
                values[r, c] = value
                notes[r][c] = f"{value:.3g}" + (f"\n{verdict}" if verdict else "")
        masked = np.ma.masked_invalid(values)
        image = axes.imshow(masked, cmap="RdBu_r" if log else "viridis", vmin=-3 if log else None, vmax=3 if log else None, aspect="auto")
        axes.set_facecolor("0.85")
        for r in range(len(schemes)):
            for c in range(len(activations)):
                dark = log and abs(values[r, c]) > 2  # deep red or blue: white text reads better
                axes.text(c, r, notes[r][c], ha="center", va="center", fontsize=7, color="white" if dark else "black")
        axes.set_xticks(range(len(activations)), activations, fontsize=8)
        axes.set_yticks(range(len(schemes)), schemes, fontsize=8)
        axes.set_title(title or report.sweep.name, fontsize=9)
    if image is not None:
        label = "log10 std of φ(h) at the last layer (0: std 1)" if log else report.metric
        figure.colorbar(image, ax=figure.axes, label=label, shrink=0.8)
    return figure


def report_markdown(report: SweepReport, figures: Sequence[str]) -> str:
    """``report.md``: counts, the table, the figures and the missing points."""
    from initbench.report import markdown_table

    total = len(report.sweep.points)
    shown = [column for column in report.columns if column not in ("experiment", "seeds")]
    sections = [
        f"# initbench sweep report: {report.sweep.name}",
        f"{report.complete} of {total} points complete; axes: "
        + "; ".join(f"`{axis.key}` = {', '.join(value_text(value) for value in axis.values)}" for axis in report.sweep.axes)
        + ". Values are medians over seeds; verdicts as in each run's summary.md.",
        markdown_table(shown, [[row.get(column, "") for column in shown] for row in report.rows])
        if report.rows
        else "No point is complete yet.",
        *(f"![{name}]({name})" for name in figures),
    ]
    if report.missing:
        sections.append(
            f"## Missing points ({len(report.missing)})\n\n"
            + "\n".join(f"- `{point.name}` ({status}): `{' '.join(point.overrides)}`" for point, status in report.missing)
        )
    return "\n\n".join(sections) + "\n"


def write_report(report: SweepReport, out: Path | None) -> RunDirectory:
    """Write the report into ``out`` or a new ``report-<time>`` folder inside the sweep directory.

    Files: ``sweep_results.csv`` (one row per point and scheme), ``std_last_by_depth.png`` (or
    ``test_acc_by_depth.png``/``loss_by_depth.png`` for training) when depth varies, ``heatmap.png``
    when the scheme or the activation varies, and ``report.md``.
    """
    from initbench.experiments import Table

    directory = RunDirectory.create(out, "report", report.path)
    directory.begin(
        yaml.safe_dump({"report_of": str(report.path)}),
        "cpu",
        "-",
        command_line(),
        {"complete": report.complete, "missing": len(report.missing)},
    )
    with directory.recording():
        directory.write_csv(
            "sweep_results.csv",
            Table(report.columns, [tuple(csv_cell(row.get(column)) for column in report.columns) for row in report.rows]),
        )
        figures: list[str] = []
        rows = [row for row in report.rows if report.metric in row]
        if report.metric and len({row["depth"] for row in rows if isinstance(row.get("depth"), int)}) > 1:
            figures.append(f"{report.metric}_by_depth.png")
            directory.write_figure(figures[-1], by_depth_figure(report))
        if report.metric and varying(rows, ("scheme", "activation")):
            figures.append("heatmap.png")
            directory.write_figure(figures[-1], heatmap_figure(report))
        directory.write_text("report.md", report_markdown(report, figures))
    return directory


def csv_cell(value: Any) -> Any:
    """A CSV cell: empty for None, ``nan``/``inf`` for non-finite floats, the value otherwise."""
    return "" if value is None else value
