"""Unique keys: at most one live job per key, across processes.

``unique/<hash>.key`` points at the job that last took the key (its id and
where it was published).  An enqueue with a key holds the key's lock
(``unique/<hash>.lock``, an ``O_EXCL`` file), follows the pointer, and
returns that job if it is still queued, scheduled or running; otherwise it
publishes the new job and points the key at it.  A pointer to a finished or
purged job is simply overwritten, so nothing has to clean up after a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nuvom_backend_file.layout import id_from_name
from nuvom_backend_file.locks import LockTable
from nuvom_backend_file.records import write_file
from nuvom_kernel.models import Job, validate_id
from nuvom_support.backend_base import LIVE_STATES

if TYPE_CHECKING:
    from nuvom_backend_file.backend import FileBackend

_MAX_POINTER_BYTES = 4096


class UniqueKeys:
    def __init__(self, backend: FileBackend) -> None:
        self.backend = backend
        self.directory = backend.layout.unique
        self.locks = LockTable(
            self.directory, stale_secs=backend.locks.stale_secs, timeout_secs=backend.locks.timeout_secs
        )

    @staticmethod
    def name(key: str) -> str:
        return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    def pointer(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def enqueue(self, job: Job, publish: Callable[[Job], Path]) -> Job:
        """Publish ``job`` unless a live job holds its key; return the job that holds it."""
        assert job.unique_key is not None
        name = self.name(job.unique_key)
        with self.locks.hold(name):
            existing = self.current(name)
            if existing is not None:
                return existing
            path = publish(job)
            self._point(name, job, path)
            return job

    def point_if_free(self, job: Job) -> None:
        """After an operator retry: take the key again unless another live job holds it."""
        assert job.unique_key is not None
        name = self.name(job.unique_key)
        with self.locks.hold(name):
            if self.current(name) is None:
                path = self.backend.locate(job.id)
                if path is not None:
                    self._point(name, job, path)

    def current(self, name: str) -> Job | None:
        """The live job the key points at, or None."""
        try:
            with open(self.pointer(name), "rb") as fh:
                text = fh.read(_MAX_POINTER_BYTES).decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        job_id, _, hint = (part.strip() for part in text.partition("\n"))
        job = None
        hinted = self._hinted_path(hint)
        if hinted is not None:  # where it was published: saves a directory listing
            record = self.backend._read(hinted)
            job = record.job if record is not None and record.job.id == job_id else None
        if job is None:
            try:
                job = self.backend.get(job_id)
            except ValueError:  # a damaged pointer names no valid job: the key is free
                return None
        return job if job is not None and job.state in LIVE_STATES else None

    def _hinted_path(self, hint: str) -> Path | None:
        """The pointer's path hint, only if it has the shape we write (never outside the root)."""
        parts = hint.split("/")
        if len(parts) != 3 or parts[0] not in ("ready", "sched") or id_from_name(parts[2]) is None:
            return None
        try:
            validate_id(parts[1], "queue name")
            validate_id(id_from_name(parts[2]) or "")
        except ValueError:
            return None
        return self.backend.root / parts[0] / parts[1] / parts[2]

    def _point(self, name: str, job: Job, path: Path) -> None:
        rel = path.relative_to(self.backend.root).as_posix()
        data = f"{job.id}\n{rel}".encode()
        write_file(self.backend.layout.tmp, self.pointer(name), data, fsync=self.backend.fsync)

    def forget(self, job_ids: set[str]) -> int:
        """Delete pointers to the given (purged) jobs; returns how many."""
        removed = 0
        try:
            with os.scandir(self.directory) as entries:
                names = [e.name[: -len(".key")] for e in entries if e.name.endswith(".key")]
        except FileNotFoundError:
            return 0
        for name in names:
            if not self.locks.try_acquire(name):
                continue
            try:
                with open(self.pointer(name), "rb") as fh:
                    job_id = fh.read(_MAX_POINTER_BYTES).decode("utf-8", "replace").partition("\n")[0].strip()
                if job_id in job_ids:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.pointer(name))
                    removed += 1
            except OSError:
                continue
            finally:
                self.locks.release(name)
        return removed
