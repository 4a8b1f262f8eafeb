"""Finding jobs, operator actions (cancel, retry), results, and the sweep.

Claims take no lock (the rename out of ``ready/`` is the claim), so a lock
holder can meet a job in ``run/`` whose content is still ``queued``: a claim
in flight that will rewrite the file within a millisecond, or one whose
process died.  Anything that would *write* such a file first waits for it to
settle (:meth:`AdminMixin._settled`); the sweep treats it as stranded only
after it has stayed that way for ``lock_stale_secs``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nuvom_backend_file.layout import READY_SUFFIXES, id_from_name
from nuvom_backend_file.records import JobRecord, retrying
from nuvom_kernel.contracts import Swept
from nuvom_kernel.models import LEASED_STATES, RETRYABLE_STATES, Job, JobState, now, validate_id
from nuvom_support.backend_base import (
    LIVE_STATES,
    cancel_update,
    lease_expired,
    retry_update,
    sweep_update,
)

if TYPE_CHECKING:
    from nuvom_backend_file.layout import Layout
    from nuvom_backend_file.locks import LockTable
    from nuvom_backend_file.unique import UniqueKeys

_TMP_MAX_AGE_SECS = 3600.0
_MOVE_RETRIES = 5
_UNSETTLED = (JobState.QUEUED, JobState.SCHEDULED)


class AdminMixin:
    layout: Layout
    locks: LockTable
    unique: UniqueKeys
    fsync: bool
    _stranded: dict[str, tuple[float, int]]

    if TYPE_CHECKING:  # provided by FileBackend

        def _check_open(self) -> None: ...
        def _read(self, path: Path) -> JobRecord | None: ...
        def _quarantine(self, path: Path, reason: str) -> None: ...
        def _write(self, path: Path, record: JobRecord, *, fsync: bool) -> None: ...
        def _commit(self, current: Path, record: JobRecord, *, fsync: bool) -> bool: ...
        def _placed(self, job: Job, path: Path) -> bool: ...
        def _hint(self, job_id: str) -> Path | None: ...
        def _promote_due(self, queues: Sequence[str], at: float) -> None: ...
        def ring(self) -> None: ...

    # -- finding a job -------------------------------------------------------------

    def locate(self, job_id: str) -> Path | None:
        """Where the job's file is now (without its lock it may move right after).

        A claim can move the file from ready/ to run/ while we scan, after run/
        was looked at; so a miss is checked again (twice) before it counts.
        """
        for _ in range(3):
            found = self._locate_once(job_id)
            if found is not None:
                return found
        return None

    def _locate_once(self, job_id: str) -> Path | None:
        for path in (self.layout.run_path(job_id), self.layout.done_path(job_id)):
            if path.exists():
                return path
        hint = self._hint(job_id)
        if hint is not None and hint.exists():
            return hint
        suffixes = tuple(f"-{job_id}{s}" for s in READY_SUFFIXES)
        for base in (self.layout.ready, self.layout.sched):
            for queue in self.layout.queues(base):
                try:
                    with os.scandir(base / queue) as entries:
                        for entry in entries:
                            if entry.name.endswith(suffixes) and id_from_name(entry.name) == job_id:
                                return Path(entry.path)
                except FileNotFoundError:
                    continue
        for path in (self.layout.run_path(job_id), self.layout.done_path(job_id)):
            if path.exists():  # moved forward (claimed, finished) while we scanned
                return path
        return None

    def get(self, job_id: str) -> Job | None:
        self._check_open()
        validate_id(job_id)
        for _ in range(_MOVE_RETRIES):  # the job may move between locating and reading it
            path = self.locate(job_id)
            if path is None:
                return None
            record = self._read(path)
            if record is not None:
                return record.job
        return None

    def is_live(self, job_id: str) -> bool:
        job = self.get(job_id)
        return job is not None and job.state in LIVE_STATES

    def _settled(self, job_id: str) -> tuple[Path, JobRecord] | None:
        """The job's file and record, once no claim is in flight.  Caller holds the lock."""
        deadline = time.monotonic() + self.locks.stale_secs
        while True:
            path = self.locate(job_id)
            record = self._read(path) if path is not None else None
            if path is None or record is None:
                if path is None:
                    return None
                continue  # moved between locate and read
            if path.parent != self.layout.run or record.job.state not in _UNSETTLED:
                return path, record
            if time.monotonic() > deadline:  # the claimer died after its rename
                home = self.layout.home(record.job)
                retrying(os.replace, path, home)
                self._placed(record.job, home)
                continue
            time.sleep(0.0005)

    def _change(self, job_id: str, change: Callable[[Path, JobRecord], Job | None]) -> Job | None:
        """Run ``change`` on the settled job under its lock, again if a claim moved it first."""
        with self.locks.hold(job_id):
            for _ in range(_MOVE_RETRIES):
                found = self._settled(job_id)
                if found is None:
                    return None
                try:
                    return change(*found)
                except FileNotFoundError:
                    continue  # a claimer renamed it out of ready/ under us: look again
        return None

    # -- operator actions ----------------------------------------------------------

    def cancel(self, job_id: str, reason: str = "cancelled") -> Job | None:
        self._check_open()
        validate_id(job_id)

        def apply(path: Path, record: JobRecord) -> Job:
            if not cancel_update(record.job, reason, now()):
                return record.job
            if record.job.state == JobState.RUNNING:  # flagged: the running attempt stops itself
                self._write(path, record, fsync=self.fsync)
            else:
                self._commit(path, record, fsync=self.fsync)
            return record.job

        return self._change(job_id, apply)

    def retry(self, job_id: str) -> Job | None:
        self._check_open()
        validate_id(job_id)

        def apply(path: Path, record: JobRecord) -> Job | None:
            if record.job.state not in RETRYABLE_STATES:
                return None  # only failed, dead or cancelled jobs are retried
            retry_update(record.job, now())
            self._commit(path, record, fsync=self.fsync)
            return record.job

        job = self._change(job_id, apply)
        if job is not None:
            if job.unique_key is not None:
                self.unique.point_if_free(job)
            self.ring()
        return job

    # -- results (ResultBackend) -----------------------------------------------------

    def save(self, job: Job) -> None:
        """Store a finished job's record (when another backend runs the queue)."""
        self._check_open()
        validate_id(job.id)
        with self.locks.hold(job.id):
            for _ in range(_MOVE_RETRIES):
                found = self._settled(job.id)
                if found is None:
                    self._write(self.layout.done_path(job.id), JobRecord(job=job), fsync=self.fsync)
                    return
                path, old = found
                try:
                    self._commit(path, JobRecord(fence=old.fence, job=job), fsync=self.fsync)
                    return
                except FileNotFoundError:
                    continue  # a claimer renamed it out of ready/ under us: look again

    def get_result(self, job_id: str) -> Job | None:
        self._check_open()
        validate_id(job_id)
        """The finished job; ``None`` while it is live (a result exists only once it ended)."""
        record = self._read(self.layout.done_path(job_id))
        job = record.job if record is not None else self.get(job_id)
        return job if job is not None and job.is_terminal() else None

    # -- sweep -----------------------------------------------------------------------

    def sweep(self) -> Swept:
        """Return expired leases, repair files a crash left in ``run/``, promote
        due scheduled jobs, break stale locks, clear old temp files."""
        self._check_open()
        self.locks.break_stale()
        at = now()
        moved = 0
        requeued = False
        dead: list[tuple[Job, Job]] = []
        seen: set[str] = set()
        for name in _names(self.layout.run):
            job_id = name[:-4] if name.endswith(".job") else ""
            path = self.layout.run / name
            try:
                validate_id(job_id)
            except ValueError:
                self._quarantine(path, f"unrecognised file name {name!r} in run/")
                continue
            seen.add(job_id)
            record = self._read(path)
            if record is None or not self._needs_sweep(record, at):
                continue
            if not self.locks.try_acquire(job_id):
                continue
            try:
                record = self._read(path)
                if record is None or not self._needs_sweep(record, at):
                    continue
                if record.job.state in LEASED_STATES:
                    died: list[tuple[Job, Job]] = []
                    sweep_update(record.job, at, died)
                    requeued = self._commit(path, record, fsync=self.fsync) or requeued
                    dead.extend(died)  # only once the change is stored
                else:  # stranded by a crash mid-change: its content says where it belongs
                    home = self.layout.home(record.job)
                    retrying(os.replace, path, home)
                    requeued = self._placed(record.job, home) or requeued
                    self._stranded.pop(job_id, None)
                moved += 1
            finally:
                self.locks.release(job_id)
        for job_id in set(self._stranded) - seen:
            del self._stranded[job_id]
        self._promote_due(self.layout.queues(self.layout.sched), at)
        self._clean_tmp(at)
        if requeued:
            self.ring()
        return Swept(moved, dead)

    def _needs_sweep(self, record: JobRecord, at: float) -> bool:
        job = record.job
        if job.state in LEASED_STATES:
            return lease_expired(job, at)
        if job.state not in _UNSETTLED:
            return True  # finished content left in run/ by a lock holder that died
        # queued content in run/: a claim in flight, or a claimer that died after its
        # rename.  Claims take no lock, so only time tells them apart.
        first_seen, fence = self._stranded.get(job.id, (at, record.fence))
        if fence != record.fence:
            first_seen = at
        self._stranded[job.id] = (first_seen, record.fence)
        return at - first_seen >= self.locks.stale_secs

    def _clean_tmp(self, at: float) -> None:
        for name in _names(self.layout.tmp):
            path = self.layout.tmp / name
            try:
                if at - path.stat().st_mtime > _TMP_MAX_AGE_SECS:
                    os.unlink(path)
            except OSError:
                continue


def _names(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return [e.name for e in entries]
    except FileNotFoundError:
        return []
