"""The run directory: the one place that writes files.

Every file is written atomically (to a temporary name in the same folder, then renamed), results
are never overwritten (a directory is claimed with an exclusive ``mkdir``, ``--out`` must be new or
empty), and ``meta.json`` says whether the run is ``running``, ``complete``, ``interrupted`` or
``failed``. Non-finite numbers are written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` in JSON
(plain JSON has no such numbers) and as ``nan``/``inf`` in CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench import __version__
from initbench.errors import InitbenchError
from initbench.experiments import ExperimentResult, Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS_ROOT = Path("results")
UMASK = os.umask(0)
os.umask(UMASK)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by their names, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def git_commit() -> str | None:
    """The commit of the initbench source tree, if it is a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


@contextmanager
def user_directory(path: Path) -> Iterator[None]:
    """Turn a directory that cannot be made where the user asked (a symlink loop, a file in the
    way, no permission, a name too long) into a user error naming it."""
    try:
        yield
    except OSError as error:  # FileExistsError too: what is in the way is no directory
        raise InitbenchError(f"Cannot create directory '{path}': {error.strerror or error}.", hint="Give another --out.") from None


def _claim_new(path: Path) -> Path:
    """Create ``path``, or ``path-1``, ``path-2``, ... if taken: two runs never share a directory."""
    candidate, suffix = path, 0
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = path.with_name(f"{path.name}-{suffix}")


class RunDirectory:
    """A run's output folder. Create one with :meth:`create`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: dict[str, Any] = {}
        self._started = 0.0

    @classmethod
    def create(cls, out: Path | None, name: str, root: Path = RESULTS_ROOT) -> RunDirectory:
        """``out`` exactly (refused if it exists and is not empty), or ``root/<name>-<timestamp>``."""
        with user_directory(out or root):
            return cls(cls._claim(out, name, root))

    @staticmethod
    def _claim(out: Path | None, name: str, root: Path) -> Path:
        if out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            return _claim_new(root / f"{name}-{stamp}")
        refused = InitbenchError(
            f"--out {out} already exists and is not empty; initbench never overwrites results.",
            hint="Choose a new directory, or leave --out out to get a fresh one under results/.",
        )
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise refused
        try:
            out.mkdir(parents=True)  # exclusive: of two runs racing for a new --out, one wins
        except FileExistsError:
            # An existing empty directory is claimed by creating meta.json exclusively; a second
            # run given the same --out at the same moment finds it taken.
            try:
                (out / "meta.json").open("x").close()
            except FileExistsError:
                raise refused from None
        return out

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write ``name`` atomically: readers see the old file or the whole new one, never half."""
        target = self.path / name
        handle, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        try:
            os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes files private; results are not
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode())

    def write_json(self, name: str, value: Any) -> Path:
        return self.write_text(name, json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n")

    def write_csv(self, name: str, table: Table) -> Path:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(table.rows)
        return self.write_text(name, buffer.getvalue())

    def write_figure(self, name: str, figure: Figure) -> Path:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
        return self.write_bytes(name, buffer.getvalue())

    def begin(self, config_yaml: str, device: str, dtype: str, command: list[str], extra: dict[str, Any] | None = None) -> None:
        """Write the resolved config and a ``running`` meta.json before any work starts.

        ``extra`` adds keys to meta.json (a sweep records the point's name and sweep there).
        """
        import torch

        self._started = time.perf_counter()
        self.write_text("config.yaml", config_yaml)
        self.meta = {
            "initbench": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "device": device,
            "dtype": dtype,
            "torch_threads": torch.get_num_threads(),
            "git_commit": git_commit(),
            "command": command,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ended": None,
            "wall_seconds": None,
            "status": "running",
            **(extra or {}),
        }
        self.write_json("meta.json", self.meta)

    def save(self, result: ExperimentResult, title: str) -> None:
        """Write the experiment's tables, summary, figures and the Markdown report."""
        for name, table in result.tables.items():
            self.write_csv(name, table)
        self.write_json("summary.json", result.summary)
        for name, figure in result.figures.items():
            self.write_figure(name, figure)
        self.write_text("summary.md", f"# {title}\n\n{result.report}\n")

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Wrap the work done after :meth:`begin`: meta.json ends ``complete``, ``interrupted``
        (Ctrl-C) or ``failed`` (with the error), and the exception still propagates."""
        try:
            yield
        except KeyboardInterrupt:
            self.finish("interrupted")
            raise
        except BaseException as error:
            self.finish("failed", error=f"{type(error).__name__}: {error}")
            raise
        self.finish("complete")

    def finish(self, status: str, error: str | None = None) -> None:
        """Record how the run ended: ``complete``, ``interrupted`` or ``failed`` (with the error)."""
        self.meta.update(
            status=status,
            ended=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            wall_seconds=round(time.perf_counter() - self._started, 3),
        )
        if error is not None:
            self.meta["error"] = error
        self.write_json("meta.json", self.meta)


def command_line() -> list[str]:
    """The command as typed, for meta.json."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


class SweepDirectory:
    """A sweep's folder, shared by all its shards and reruns: ``sweep.json``, ``base.yaml``, ``points/``.

    Unlike a run directory it may already exist: that is how shards on machines sharing a
    filesystem, and reruns after a crash, meet. Nothing in it is ever overwritten:

    - the index files are created only if absent (written to a temporary name, then hard-linked
      into place, which fails instead of replacing); a shard that finds them compares them with
      its own and refuses to mix two different sweeps in one folder;
    - a point's directory ``points/<name>/`` is claimed with an exclusive ``mkdir``, so two
      processes can never run into the same one;
    - an unfinished point (status ``running``, ``interrupted`` or ``failed``, or no meta.json) is
      renamed to ``points/<name>.<status>-<n>`` before the point runs again, keeping what it wrote.
    """

    INDEX = "sweep.json"
    BASE = "base.yaml"
    POINTS = "points"

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def is_sweep(cls, path: Path) -> bool:
        return (path / cls.INDEX).is_file()

    @classmethod
    def create(cls, out: Path | None, name: str, root: Path = RESULTS_ROOT) -> SweepDirectory:
        """``out`` (new, empty, or already this kind of folder), or a fresh ``root/<name>-sweep-<timestamp>``."""
        if out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            with user_directory(root):
                return cls(_claim_new(root / f"{name}-sweep-{stamp}"))
        if out.exists() and (not out.is_dir() or (not cls.is_sweep(out) and cls._foreign(out))):
            raise InitbenchError(
                f"--out {out} already exists and is not a sweep directory; initbench never overwrites results.",
                hint="Give a new directory, or the directory of the same sweep to resume it or add a shard.",
            )
        with user_directory(out):
            out.mkdir(parents=True, exist_ok=True)
        return cls(out)

    @classmethod
    def _foreign(cls, path: Path) -> list[str]:
        """Entries of ``path`` that no sweep writes.

        Hidden names are allowed: a shard that started at the same moment may have made the folder
        and be writing its temporary index file when this one looks.
        """
        layout = {cls.INDEX, cls.BASE, cls.POINTS, "submitit"}
        return [entry.name for entry in path.iterdir() if entry.name not in layout and not entry.name.startswith(".")]

    def write_once(self, name: str, text: str) -> bool:
        """Create ``name`` with ``text`` unless it exists; True if this call created it.

        Racing shards write identical text, so whichever link wins, the file is the same. On a
        filesystem without hard links the file is created exclusively and then written.
        """
        handle, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        try:
            os.chmod(temporary, 0o666 & ~UMASK)
            with os.fdopen(handle, "wb") as stream:
                stream.write(text.encode())
            os.link(temporary, self.path / name)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here
            try:
                with (self.path / name).open("x") as stream:
                    stream.write(text)
            except FileExistsError:
                return False
            return True
        finally:
            Path(temporary).unlink(missing_ok=True)

    def point_path(self, name: str) -> Path:
        return self.path / self.POINTS / name

    def set_aside(self, name: str, status: str) -> Path:
        """Rename an unfinished point's directory to ``<name>.<status>-<n>`` (first free n)."""
        source = self.point_path(name)
        number = 1
        while True:
            target = source.with_name(f"{name}.{status}-{number}")
            try:
                target.mkdir()  # claims the name: a rename onto an existing empty directory would replace it
            except FileExistsError:
                number += 1
                continue
            try:
                os.replace(source, target)
            except BaseException:
                target.rmdir()
                raise
            return target

    def claim_point(self, name: str) -> RunDirectory | None:
        """The point's new run directory, or None if another process claimed it first."""
        path = self.point_path(name)
        path.parent.mkdir(exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            return None
        return RunDirectory(path)
