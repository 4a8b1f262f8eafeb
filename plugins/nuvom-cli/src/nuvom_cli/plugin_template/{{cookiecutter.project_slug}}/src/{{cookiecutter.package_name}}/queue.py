"""A queue and result backend keeping jobs in a dict, guarded by one lock.

An example that is small but correct: it passes the kernel's
QueueBackendContract and ResultBackendContract.  *What* each change does to a
job comes from nuvom_support.backend_base (the same state machine every
backend uses); this class only makes each change atomic (the lock) and keeps
copies, so callers never share mutable jobs with the store.  Claims scan all
jobs, which is fine for thousands of jobs, not for millions; the data lives
as long as the process.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nuvom_support.backend_base import (
    LIVE_STATES,
    Doorbell,
    QueueBackendBase,
    can_start,
    cancel_update,
    claim_order_key,
    claim_update,
    enqueue_update,
    finish_update,
    holds_lease,
    is_claimable,
    lease_expired,
    release_update,
    retry_update,
    start_update,
    sweep_update,
)
from nuvom_kernel.contracts import (
    Completion,
    Exchanged,
    JobFilter,
    JobPage,
    Swept,
    after_cursor,
    decode_cursor,
    encode_cursor,
)
from nuvom_kernel.models import Job, JobState, Outcome, WorkerInfo, now, validate_id

RETRYABLE = (JobState.FAILED, JobState.DEAD, JobState.CANCELLED)


class DictStore:
    """The data: jobs, workers, the token counter, the lock and the doorbell.
    Several backend objects (one per app) may share one store."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}
        self.workers: dict[str, WorkerInfo] = {}
        self.tokens = itertools.count(1)
        self.doorbell = Doorbell()


class DictQueueBackend(QueueBackendBase):
    """Implements QueueBackend, JobStore, ResultBackend and WorkerRegistry
    (nuvom_kernel.contracts) over a :class:`DictStore`."""

    def __init__(self, data: DictStore | None = None) -> None:
        super().__init__()
        data = data if data is not None else DictStore()
        self._lock = data.lock
        self._jobs = data.jobs
        self._workers = data.workers
        self._tokens = data.tokens
        self.doorbell = data.doorbell  # wake-ups reach every app on the same data

    def _live_with_key(self, key: str | None) -> Job | None:
        if not key:
            return None
        return next((j for j in self._jobs.values() if j.unique_key == key and j.state in LIVE_STATES), None)


    # -- queue --------------------------------------------------------------------

    def enqueue(self, job: Job) -> Job:
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        out: list[Job] = []
        with self._lock:
            for original in jobs:
                job = enqueue_update(original.model_copy(deep=True))
                # the same id again, or a live job holding the unique key: one job, the stored one
                existing = self._jobs.get(job.id) or self._live_with_key(job.unique_key)
                if existing is not None:
                    out.append(existing.model_copy(deep=True))
                    continue
                self._jobs[job.id] = job
                out.append(job.model_copy(deep=True))
        self.doorbell.ring()
        return out

    def claim(self, queues: Sequence[str], limit: int, lease_secs: float, worker_id: str,
              *, start_now: int = 0) -> list[Job]:
        if limit <= 0:
            return []
        at = now()
        wanted = set(queues)
        with self._lock:
            ready = [j for j in self._jobs.values() if j.queue in wanted and is_claimable(j, at)]
            ready.sort(key=claim_order_key)
            return [claim_update(job, next(self._tokens), lease_secs, worker_id, at, start=i < start_now)
                    .model_copy(deep=True) for i, job in enumerate(ready[:limit])]

    def start(self, leases: Mapping[str, int]) -> set[str]:
        started: set[str] = set()
        with self._lock:
            for job_id, token in leases.items():
                job = self._jobs.get(job_id)
                if job is not None and can_start(job, token):
                    start_update(job)
                    started.add(job_id)
        return started

    def finish(self, job_id: str, token: int, outcome: Outcome) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not finish_update(job, token, outcome):
                return False
            requeued = job.state in (JobState.QUEUED, JobState.SCHEDULED)
        if requeued:
            self.doorbell.ring()
        return True

    def exchange(self, completions: Sequence[Completion], queues: Sequence[str], limit: int,
                 lease_secs: float, worker_id: str, *, starts: Mapping[str, int] | None = None,
                 start_now: int = 0) -> Exchanged:
        with self._lock:  # finish, start and claim as one step
            return super().exchange(completions, queues, limit, lease_secs, worker_id,
                                    starts=starts, start_now=start_now)

    def renew(self, leases: Mapping[str, int], lease_secs: float) -> set[str]:
        lost: set[str] = set()
        at = now()
        with self._lock:
            for job_id, token in leases.items():
                job = self._jobs.get(job_id)
                if job is None or not holds_lease(job, token):
                    lost.add(job_id)
                else:
                    job.lease_expires_at = at + lease_secs
        return lost

    def release(self, job_id: str, token: int) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not can_start(job, token):  # only a claim that never started
                return False
            release_update(job)
        self.doorbell.ring()
        return True

    def sweep(self) -> Swept:
        at = now()
        dead: list[tuple[Job, Job]] = []  # (before, after) of jobs this sweep made dead
        with self._lock:
            expired = [j for j in self._jobs.values() if lease_expired(j, at)]
            for job in expired:
                sweep_update(job, at, dead)
        if expired:
            self.doorbell.ring()
        return Swept(len(expired), dead)

    def get(self, job_id: str) -> Job | None:
        validate_id(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            return job.model_copy(deep=True) if job is not None else None

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50,
                   cursor: str | None = None) -> JobPage:
        wanted = filter or JobFilter()
        position = decode_cursor(cursor) if cursor else None
        with self._lock:
            rows = [j for j in self._jobs.values()
                    if wanted.matches(j.state, j.task, j.queue, j.created_at, j.id)
                    and after_cursor(j.created_at, j.id, position)]
            rows.sort(key=lambda j: (j.created_at, j.id), reverse=True)
            page = [j.model_copy(deep=True) for j in rows[:limit]]
        more = len(rows) > len(page) and page
        return JobPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

    def cancel(self, job_id: str, reason: str = "cancelled") -> Job | None:
        validate_id(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            cancel_update(job, reason)
            return job.model_copy(deep=True)

    def retry(self, job_id: str) -> Job | None:
        validate_id(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state not in RETRYABLE or self._live_with_key(job.unique_key) is not None:
                return None
            copy = retry_update(job).model_copy(deep=True)
        self.doorbell.ring()
        return copy

    def set_progress(self, job_id: str, token: int, progress: Any) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != JobState.RUNNING or job.token != token:
                return False
            job.progress = progress
            job.updated_at = now()
            return True

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for job in self._jobs.values():
                per_queue = out.setdefault(job.queue, {})
                per_queue[job.state.value] = per_queue.get(job.state.value, 0) + 1
        return out

    def oldest_queued_at(self) -> float | None:
        at = now()
        with self._lock:
            times = [j.eta or j.created_at for j in self._jobs.values() if is_claimable(j, at)]
        return min(times) if times else None

    def purge(self, *, states: Iterable[JobState] | None = None, older_than: float | None = None) -> int:
        wanted = set(states) if states else None
        with self._lock:
            doomed = [job_id for job_id, j in self._jobs.items()
                      if j.is_terminal() and (wanted is None or j.state in wanted)
                      and (older_than is None or (j.finished_at or j.updated_at) < older_than)]
            for job_id in doomed:
                del self._jobs[job_id]
        return len(doomed)

    def register_worker(self, info: WorkerInfo) -> None:
        with self._lock:
            self._workers[info.id] = info.model_copy()

    def list_workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [w.model_copy() for w in sorted(self._workers.values(), key=lambda w: w.started_at)]

    def close(self) -> None:
        """Nothing to release: the jobs live as long as the process."""

    # -- results (the same dict) ----------------------------------------------------

    def save(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job.model_copy(deep=True)

    def get_result(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        return job if job is not None and job.is_terminal() else None
