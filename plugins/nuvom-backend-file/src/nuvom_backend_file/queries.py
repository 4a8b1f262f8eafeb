"""Read-mostly operations over the whole directory: listing, counting,
purging, worker registrations.

These visit every job file, so they cost O(jobs).  A small in-process cache
keyed by (path, inode, mtime, size) remembers what each file held, so after
the first call only new or changed files are read; a job file is never
changed in place (every write is a fresh inode published by ``os.replace``),
which is what makes that key safe.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from nuvom_backend_file.ids import IdMarkers
from nuvom_backend_file.layout import READY_SUFFIXES
from nuvom_backend_file.records import write_file
from nuvom_kernel.contracts import JobFilter, JobPage, after_cursor, decode_cursor, encode_cursor
from nuvom_kernel.models import TERMINAL_STATES, Job, JobState, WorkerInfo, validate_id

if TYPE_CHECKING:
    from nuvom_backend_file.layout import Layout
    from nuvom_backend_file.locks import LockTable
    from nuvom_backend_file.records import JobRecord
    from nuvom_backend_file.unique import UniqueKeys

_WORKER_SUFFIX = ".wrk"
_MAX_WORKER_BYTES = 64 * 1024


@dataclass(frozen=True)
class JobMeta:
    id: str
    state: JobState
    queue: str
    task: str
    created_at: float
    updated_at: float
    finished_at: float | None


class QueriesMixin:
    layout: Layout
    root: Path
    locks: LockTable
    unique: UniqueKeys
    ids: IdMarkers

    if TYPE_CHECKING:  # provided by FileBackend

        def _read(self, path: Path) -> JobRecord | None: ...
        def _quarantine(self, path: Path, reason: str) -> None: ...
        def _check_open(self) -> None: ...
        def get(self, job_id: str) -> Job | None: ...

    def _init_queries(self) -> None:
        self._meta: dict[str, tuple[tuple[int, int, int], JobMeta]] = {}
        self._meta_lock = threading.Lock()

    def _job_files(self) -> Iterator[os.DirEntry[str]]:
        for base in (self.layout.ready, self.layout.sched):
            for queue in self.layout.queues(base):
                yield from _entries(base / queue)
        yield from _entries(self.layout.run)
        yield from _entries(self.layout.done)

    def _scan(self) -> dict[str, tuple[Path, JobMeta]]:
        """Every job's metadata by id (if a job moved during the scan, its newest copy)."""
        fresh: dict[str, tuple[tuple[int, int, int], JobMeta]] = {}
        found: dict[str, tuple[Path, JobMeta]] = {}
        with self._meta_lock:
            cache = self._meta
        for entry in self._job_files():
            try:
                st = entry.stat()
            except OSError:
                continue
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = cache.get(entry.path)
            if cached is not None and cached[0] == key:
                meta = cached[1]
            else:
                record = self._read(Path(entry.path))
                if record is None:
                    continue
                job = record.job
                meta = JobMeta(job.id, job.state, job.queue, job.task, job.created_at, job.updated_at, job.finished_at)
            fresh[entry.path] = (key, meta)
            seen = found.get(meta.id)
            if seen is None or meta.updated_at >= seen[1].updated_at:
                found[meta.id] = (Path(entry.path), meta)
        with self._meta_lock:
            self._meta = fresh
        return found

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50,
                   cursor: str | None = None) -> JobPage:
        """Newest first by ``(created_at, id)``, filtered on the cached metadata;
        reads only the page's files."""
        self._check_open()
        wanted = filter or JobFilter()
        position = decode_cursor(cursor) if cursor else None
        metas = [
            (path, m)
            for path, m in self._scan().values()
            if wanted.matches(m.state, m.task, m.queue, m.created_at, m.id)
            and after_cursor(m.created_at, m.id, position)
        ]
        metas.sort(key=lambda pm: (pm[1].created_at, pm[1].id), reverse=True)
        out: list[Job] = []
        size = max(0, limit)
        for path, meta in metas[:size]:
            record = self._read(path)
            job = record.job if record is not None else self.get(meta.id)
            if job is not None:
                out.append(job)
        last = metas[size - 1][1] if size and len(metas) > size else None
        return JobPage(out, encode_cursor(last.created_at, last.id) if last is not None else None)

    def counts(self) -> dict[str, dict[str, int]]:
        self._check_open()
        out: dict[str, dict[str, int]] = {}
        for _, meta in self._scan().values():
            per_queue = out.setdefault(meta.queue, {})
            per_queue[meta.state.value] = per_queue.get(meta.state.value, 0) + 1
        return out

    def oldest_queued_at(self) -> float | None:
        self._check_open()
        times = [m.created_at for _, m in self._scan().values() if m.state == JobState.QUEUED]
        return min(times) if times else None

    def purge(self, *, states: Iterable[JobState] | None = None, older_than: float | None = None) -> int:
        """Delete finished jobs (in ``states`` if given) that finished before ``older_than``."""
        self._check_open()
        wanted = {JobState(s) for s in states} & TERMINAL_STATES if states is not None else set(TERMINAL_STATES)
        purged: set[str] = set()
        for path, meta in self._scan().values():
            if path.parent != self.layout.done or not _purgeable(meta.state, meta.finished_at, wanted, older_than):
                continue
            with self.locks.hold(meta.id):
                record = self._read(path)
                if record is None or not _purgeable(record.job.state, record.job.finished_at, wanted, older_than):
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                purged.add(meta.id)
        if purged:
            self.unique.forget(purged)
            self.ids.forget(purged)
        return len(purged)

    # -- workers -------------------------------------------------------------------

    def _worker_path(self, worker_id: str) -> Path:
        try:
            name = validate_id(worker_id, "worker id")
        except ValueError:
            name = "h-" + hashlib.blake2b(worker_id.encode("utf-8", "replace"), digest_size=16).hexdigest()
        return self.layout.workers / f"{name}{_WORKER_SUFFIX}"

    def register_worker(self, info: WorkerInfo) -> None:
        self._check_open()
        write_file(self.layout.tmp, self._worker_path(info.id), info.model_dump_json().encode(), fsync=False)

    def list_workers(self) -> list[WorkerInfo]:
        self._check_open()
        workers: list[WorkerInfo] = []
        for entry in _entries(self.layout.workers, (_WORKER_SUFFIX,)):
            try:
                with open(entry.path, "rb") as fh:
                    data = fh.read(_MAX_WORKER_BYTES + 1)
                if len(data) > _MAX_WORKER_BYTES:
                    raise ValueError(f"over {_MAX_WORKER_BYTES} bytes")
                workers.append(WorkerInfo.model_validate_json(data))
            except FileNotFoundError:
                continue
            except (ValidationError, ValueError) as exc:
                self._quarantine(Path(entry.path), f"unreadable worker registration: {exc}")
        workers.sort(key=lambda w: (w.started_at, w.id))
        return workers


def _purgeable(state: JobState, finished_at: float | None, wanted: set[JobState], older_than: float | None) -> bool:
    if state not in wanted:
        return False
    return older_than is None or (finished_at is not None and finished_at < older_than)


def _entries(directory: Path, suffixes: tuple[str, ...] = READY_SUFFIXES) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            yield from (e for e in it if e.name.endswith(suffixes))
    except FileNotFoundError:
        return
