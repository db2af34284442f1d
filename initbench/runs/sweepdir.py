"""A sweep's directory: its index written once, one run directory per point, points claimed under a
lock so that shards on several machines never run the same point twice.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from initbench.core.errors import InitbenchError
from initbench.runs.rundir import RESULTS_ROOT, UMASK, RunDirectory, _claim_new, user_directory


class SweepDirectory:
    """A sweep's folder, shared by all its shards and reruns: ``sweep.json``, ``base.yaml``, ``points/``.

    Unlike a run directory it may already exist: that is how shards on machines sharing a
    filesystem, and reruns after a crash, meet. Nothing in it is ever overwritten:

    - the index files are created only if absent (written to a temporary name, then hard-linked
      into place, which fails instead of replacing); a shard that finds them compares them with
      its own and refuses to mix two different sweeps in one folder;
    - a point is decided on, claimed and run under its lock (:meth:`lock_point`), and its
      directory ``points/<name>/`` is claimed by :meth:`RunDirectory.claim`, so two processes can
      never run into the same one;
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

    def lock_point(self, name: str) -> int | None:
        """Lock point ``name`` for this process (until :meth:`unlock_point`); None if another holds it.

        Only the holder may look at a point's status, move an unfinished attempt aside, claim and
        run it, so two sweeps can never both decide to run one point, nor one move aside a point
        the other has just claimed. The lock is an ``flock`` on ``points/.<name>.lock``: the kernel
        drops it when its process dies, so a killed job never blocks a point.
        """
        path = self.point_path(f".{name}.lock")
        path.parent.mkdir(exist_ok=True)
        while True:
            handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                return None
            try:
                current = os.stat(path)
                held = os.fstat(handle)
                if (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                    return handle
            except FileNotFoundError:
                pass
            os.close(handle)  # its holder removed that file after we opened it: lock the one there now

    def unlock_point(self, name: str, handle: int) -> None:
        """Release :meth:`lock_point`'s lock, removing the lock file (no sweep leaves any behind)."""
        self.point_path(f".{name}.lock").unlink(missing_ok=True)
        os.close(handle)

    def claim_point(self, name: str, config_yaml: str, meta: dict[str, Any]) -> RunDirectory | None:
        """The point's new run directory, begun with ``config_yaml`` and ``meta``; None if taken."""
        self.point_path(name).parent.mkdir(exist_ok=True)
        return RunDirectory.claim(self.point_path(name), config_yaml, meta)
