"""The run directory: the one place that writes files.

Every file is written atomically (to a temporary name in the same folder, then renamed), results
are never overwritten (a directory is claimed by renaming a prepared one into place, so exactly one
of several racing processes gets it; ``--out`` must be new or empty), and ``meta.json`` says
whether the run is ``running``, ``complete``, ``interrupted`` or ``failed``; it never stays
``running`` after the run ended, even when the disk is full. JSON is strict (plain JSON has no
NaN or infinity): a non-finite number is written as ``null`` with a sibling ``<key>_nonfinite``
naming it (:func:`json_safe`, undone by :func:`json_restored`); CSV spells them ``nan``/``inf``.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initbench._version import __version__
from initbench.core import signals
from initbench.core.errors import InitbenchError
from initbench.runs.jsonio import json_safe

if TYPE_CHECKING:
    from initbench.core.interfaces import Table
    from initbench.experiments.base import ExperimentResult


RESULTS_ROOT = Path("results")


UMASK = os.umask(0)


os.umask(UMASK)


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
    """Create ``path``, or ``path-1``, ``path-2``, ... if taken: two sweeps never share a fresh directory."""
    candidate, suffix = path, 0
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = path.with_name(f"{path.name}-{suffix}")


def opening_meta(device: str, dtype: str, command: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's ``meta.json`` at its start: versions, device, command, host and pid, status ``running``.

    ``extra`` adds keys (a sweep records the point's name and sweep there).
    """
    # Deferred for start-up time: loads torch.
    import torch

    return {
        "initbench": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "command": command,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ended": None,
        "wall_seconds": None,
        "status": "running",
        **(extra or {}),
    }


def is_live_here(meta: dict[str, Any]) -> bool:
    """Whether the process ``meta`` names runs on this host (and is not this process)."""
    try:
        pid = int(meta["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if meta.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _overwrite_in_place(path: Path, data: bytes) -> None:
    """Rewrite ``path``'s bytes without a new file: on a full disk a short file's block is still there."""
    with path.open("r+b") as stream:
        stream.write(data)
        stream.truncate()


def _write_all(handle: int, data: bytes) -> None:
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)


class RunDirectory:
    """A run's output folder, claimed with :meth:`claim` or :meth:`create`, or reopened to resume.

    A directory comes into existence whole: its ``config.yaml`` and a ``running`` meta.json are
    written into a hidden folder beside it, which is then renamed into place. The rename is the
    claim: of several processes given the same path only one succeeds (a rename onto a directory
    that is not empty fails), and no reader ever sees a claimed directory without its meta.json.
    """

    CONFIG = "config.yaml"
    META = "meta.json"

    def __init__(self, path: Path, meta: dict[str, Any] | None = None) -> None:
        self.path = path
        self.meta: dict[str, Any] = meta or {}
        self.finished = False
        self._started = time.perf_counter()

    @classmethod
    def claim(cls, path: Path, config_yaml: str, meta: dict[str, Any]) -> RunDirectory | None:
        """``path``, new (or empty) and holding ``config.yaml`` and ``meta``, or None if it is taken."""
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = cls(Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".claim")), meta)
        try:
            os.chmod(staging.path, 0o777 & ~UMASK)  # mkdtemp makes folders private; results are not
            staging.write_text(cls.CONFIG, config_yaml)
            staging.write_json(cls.META, meta)
            try:
                os.rename(staging.path, path)  # replaces an empty directory; fails on one with files
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    return None
                raise
        finally:
            if staging.path.exists():
                shutil.rmtree(staging.path, ignore_errors=True)
        return cls(path, meta)

    @classmethod
    def create(cls, out: Path | None, name: str, config_yaml: str, meta: dict[str, Any], root: Path = RESULTS_ROOT) -> RunDirectory:
        """Claim ``out`` exactly (refused if it exists and is not empty), or ``root/<name>-<timestamp>``
        (``-1``, ``-2``, ... appended while taken: two runs never share a directory)."""
        with user_directory(out or root):
            if out is None:
                stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
                base, suffix = root / f"{name}-{stamp}", 0
                while (directory := cls.claim(base.with_name(f"{base.name}-{suffix}") if suffix else base, config_yaml, meta)) is None:
                    suffix += 1
                return directory
            directory = cls.claim(out, config_yaml, meta)
        if directory is None:
            raise InitbenchError(
                f"--out {out} already exists and is not empty; initbench never overwrites results.",
                hint="Choose a new directory, or leave --out out to get a fresh one under results/.",
            )
        return directory

    @classmethod
    def reopen(cls, path: Path, command: list[str]) -> tuple[RunDirectory, str]:
        """Claim an unfinished run's directory to run it again in place; returns it and its config text.

        Refused for a complete run and for one whose process still runs on this host. The claim
        renames meta.json to a name of this process's own: of two processes resuming the same
        directory only one can, and meanwhile the run has no meta.json to mislead a reader.
        """
        meta_path = path / cls.META
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            status = meta["status"]
        except FileNotFoundError:
            raise InitbenchError(f"{path} has no {cls.META}: it is not a run directory, or another process is resuming it.") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InitbenchError(f"Cannot read {meta_path}: {error}.") from None
        if status == "complete":
            raise InitbenchError(f"{path} is complete; there is nothing to resume.", hint="Start a new run to run it again.")
        if status == "running" and is_live_here(meta):
            raise InitbenchError(f"{path} is still running in process {meta['pid']} on this host.")
        claimed = path / f".{cls.META}.{os.getpid()}.resume"
        try:
            os.rename(meta_path, claimed)
        except FileNotFoundError:
            raise InitbenchError(f"Another process is resuming {path}.") from None
        try:
            config_text = (path / cls.CONFIG).read_text(encoding="utf-8")
            attempts = [*meta.get("attempts", []), {key: meta.get(key) for key in ("status", "started", "ended", "error", "host", "pid")}]
            meta.update(command=command, host=socket.gethostname(), pid=os.getpid(), status="running", ended=None, wall_seconds=None)
            meta.pop("error", None)
            meta.update(started=datetime.now(timezone.utc).isoformat(timespec="seconds"), attempts=attempts)
            directory = cls(path, meta)
            directory.write_json(cls.META, meta)
        except BaseException:
            os.rename(claimed, meta_path)  # as it was: resumable again
            raise
        claimed.unlink()
        return directory, config_text

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write ``name`` atomically: readers see the old file or the whole new one, never half.

        ``name`` may name a file in a subfolder (``models/he-seed0.pt``); the folder is made first.
        """
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        # A signal between creating the temporary file and cleaning it up would leave it behind: the
        # write finishes (or fails and cleans up) first, then the signal stops the run.
        with signals.deferred():
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes files private; results are not
                _write_all(handle, data)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        return target

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode())

    def write_json(self, name: str, value: Any) -> Path:
        return self.write_text(name, json_text(value))

    def write_csv(self, name: str, table: Table) -> Path:
        return self.write_text(name, csv_text(table))

    def read_bytes(self, name: str) -> bytes | None:
        """``name``'s bytes, or None if there is no such file."""
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, name: str) -> None:
        """Delete ``name`` (a checkpoint, once the run it served is complete)."""
        (self.path / name).unlink(missing_ok=True)

    def save(self, result: ExperimentResult) -> None:
        """Write the experiment's data: its tables, summary, other JSON files and other files.

        Figures and summary.md come after, from these files (:mod:`initbench.outputs.run_report`).
        """
        for name, table in result.tables.items():
            self.write_csv(name, table)
        if result.summary is not None:
            self.write_json("summary.json", result.summary)
        for name, value in result.json_files.items():
            self.write_json(name, value)
        for name, data in result.files.items():
            self.write_bytes(name, data)

    def finish(self, status: str, error: str | None = None) -> None:
        """Record how the run ended: ``complete``, ``interrupted`` or ``failed`` (with the error).

        Signals wait until the record is written. If meta.json cannot be replaced (a full disk
        refuses the temporary file), it is overwritten in place; if even that fails, it is removed.
        Either way it never says ``running`` after the run ended. Failing to record ``complete``
        raises (the run did not end as recorded); failing to record a failure leaves the original
        error to propagate.
        """
        self.meta.update(
            status=status,
            ended=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            wall_seconds=round(time.perf_counter() - self._started, 3),
        )
        if error is not None:
            self.meta["error"] = error
        with signals.deferred():
            self.finished = True
            try:
                self._record_meta(status == "complete")
            except KeyboardInterrupt:  # without initbench's handlers a Ctrl-C is not deferred: say so, then stop
                self.meta["status"] = "interrupted"
                self._record_meta(must=False)
                raise

    def _record_meta(self, must: bool) -> None:
        """Write meta.json; on a full disk rewrite it in place, else remove it (raising if ``must``)."""
        try:
            self.write_json(self.META, self.meta)
        except OSError as failure:
            self.meta["recorded_in_place"] = f"{type(failure).__name__}: {failure}"
            data = json_text(self.meta).encode()
            try:
                _overwrite_in_place(self.path / self.META, data)
            except OSError:
                (self.path / self.META).unlink(missing_ok=True)
                if must:
                    raise failure from None


def csv_text(table: Table) -> str:
    """A table as its CSV file's text (floats in full: ``repr`` reads back to the same number)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return buffer.getvalue()


def json_text(value: Any) -> str:
    """A value as a strict JSON file's text (:func:`json_safe`)."""
    return json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n"


def command_line() -> list[str]:
    """The command as typed, for meta.json."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]]
