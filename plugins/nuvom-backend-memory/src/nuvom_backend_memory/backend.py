"""Queue and results in a dict, guarded by one lock.  One process only; not durable.

Jobs are copied on the way in and out, so callers never share mutable state
with the store.  Claims use a heap per queue ordered by (priority desc, ready
time, id); stale heap entries are skipped lazily, so a claim is O(log n).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nuvom_backend_memory.schedules import MemorySchedules
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
from nuvom_support.backend_base import (
    LIVE_STATES,
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


class MemoryBackend(MemorySchedules, QueueBackendBase):
    """Implements both ``QueueBackend`` and ``ResultBackend`` (and the schedule store)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._heaps: dict[str, list[tuple[tuple[float, float, str], str]]] = {}  # ready, per queue
        self._scheduled: list[tuple[float, str]] = []  # (eta, id) of future jobs
        self._unique: dict[str, str] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._tokens = itertools.count(1)

    # -- helpers -----------------------------------------------------------------

    def _push(self, job: Job) -> None:
        if job.state == JobState.SCHEDULED and job.eta is not None and job.eta > now():
            heapq.heappush(self._scheduled, (job.eta, job.id))
        else:
            heapq.heappush(self._heaps.setdefault(job.queue, []), (claim_order_key(job), job.id))

    def _promote_due(self, at: float) -> None:
        while self._scheduled and self._scheduled[0][0] <= at:
            eta, jid = heapq.heappop(self._scheduled)
            job = self._jobs.get(jid)
            if job is not None and job.state == JobState.SCHEDULED and job.eta == eta:
                heapq.heappush(self._heaps.setdefault(job.queue, []), (claim_order_key(job), job.id))

    def _top(self, q: str) -> tuple[tuple[float, float, str], str] | None:
        heap = self._heaps.get(q)
        while heap:
            key, jid = heap[0]
            job = self._jobs.get(jid)
            if job is not None and job.queue == q and job.state in (JobState.QUEUED, JobState.SCHEDULED) \
                    and claim_order_key(job) == key:
                return heap[0]
            heapq.heappop(heap)  # stale entry: the job moved on since it was pushed
        return None

    def _unindex_unique(self, job: Job) -> None:
        if job.unique_key and self._unique.get(job.unique_key) == job.id and job.state not in LIVE_STATES:
            del self._unique[job.unique_key]

    # -- queue -------------------------------------------------------------------

    def enqueue(self, job: Job) -> Job:
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        out: list[Job] = []
        with self._lock:
            for original in jobs:
                job = enqueue_update(original.snapshot())
                stored = self._jobs.get(job.id)
                if stored is not None:  # the same id enqueued again: one job, the stored one
                    out.append(stored.snapshot())
                    continue
                if job.unique_key:
                    existing_id = self._unique.get(job.unique_key)
                    if existing_id is not None:
                        out.append(self._jobs[existing_id].snapshot())
                        continue
                    self._unique[job.unique_key] = job.id
                self._jobs[job.id] = job
                self._push(job)
                out.append(job.snapshot())
        self.doorbell.ring()
        return out

    def claim(self, queues: Sequence[str], limit: int, lease_secs: float, worker_id: str,
              *, start_now: int = 0) -> list[Job]:
        if limit <= 0:
            return []
        at = now()
        claimed: list[Job] = []
        with self._lock:
            self._promote_due(at)
            while len(claimed) < limit:
                tops = [t for q in queues if (t := self._top(q)) is not None]
                if not tops:
                    break
                key, jid = min(tops)
                job = self._jobs[jid]
                heapq.heappop(self._heaps[job.queue])
                claim_update(job, next(self._tokens), lease_secs, worker_id, at, start=len(claimed) < start_now)
                claimed.append(job.snapshot())
        return claimed

    def start(self, leases: Mapping[str, int]) -> set[str]:
        started: set[str] = set()
        at = now()
        with self._lock:
            for jid, token in leases.items():
                job = self._jobs.get(jid)
                if job is not None and can_start(job, token):
                    start_update(job, at)
                    started.add(jid)
        return started

    def finish(self, job_id: str, token: int, outcome: Outcome) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not finish_update(job, token, outcome):
                return False
            if job.state in (JobState.QUEUED, JobState.SCHEDULED):
                self._push(job)
                requeued = True
            else:
                self._unindex_unique(job)
                requeued = False
        if requeued:
            self.doorbell.ring()
        return True

    def exchange(self, completions: Sequence[Completion], queues: Sequence[str], limit: int,
                 lease_secs: float, worker_id: str, *, starts: Mapping[str, int] | None = None,
                 start_now: int = 0) -> Exchanged:
        with self._lock:
            return super().exchange(completions, queues, limit, lease_secs, worker_id,
                                    starts=starts, start_now=start_now)

    def renew(self, leases: Mapping[str, int], lease_secs: float) -> set[str]:
        lost: set[str] = set()
        at = now()
        with self._lock:
            for jid, token in leases.items():
                job = self._jobs.get(jid)
                if job is None or not holds_lease(job, token):
                    lost.add(jid)
                else:
                    job.lease_expires_at = at + lease_secs
        return lost

    def release(self, job_id: str, token: int) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not can_start(job, token):
                return False
            release_update(job)
            self._push(job)
        self.doorbell.ring()
        return True

    def sweep(self) -> Swept:
        at = now()
        moved = 0
        dead: list[tuple[Job, Job]] = []
        with self._lock:
            for job in self._jobs.values():
                if lease_expired(job, at):
                    sweep_update(job, at, dead)
                    if job.state == JobState.QUEUED:
                        self._push(job)
                    else:
                        self._unindex_unique(job)
                    moved += 1
        if moved:
            self.doorbell.ring()
        return Swept(moved, dead)

    def get(self, job_id: str) -> Job | None:
        validate_id(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            return job.snapshot() if job is not None else None

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50,
                   cursor: str | None = None) -> JobPage:
        wanted = filter or JobFilter()
        position = decode_cursor(cursor) if cursor else None
        with self._lock:
            rows = [j for j in self._jobs.values()
                    if wanted.matches(j.state, j.task, j.queue, j.created_at, j.id)
                    and after_cursor(j.created_at, j.id, position)]
            rows.sort(key=lambda j: (j.created_at, j.id), reverse=True)
            page = [j.snapshot() for j in rows[:max(0, limit)]]
        more = len(rows) > len(page) and page
        return JobPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

    def cancel(self, job_id: str, reason: str = "cancelled") -> Job | None:
        validate_id(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            cancel_update(job, reason)
            self._unindex_unique(job)
            return job.snapshot()

    def retry(self, job_id: str) -> Job | None:
        validate_id(job_id)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state not in (JobState.FAILED, JobState.DEAD, JobState.CANCELLED):
                return None
            if job.unique_key and job.unique_key in self._unique:
                return None  # another live job holds the key now
            retry_update(job)
            if job.unique_key:
                self._unique[job.unique_key] = job.id
            self._push(job)
            copy = job.snapshot()
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
                per = out.setdefault(job.queue, {})
                per[job.state.value] = per.get(job.state.value, 0) + 1
        return out

    def oldest_queued_at(self) -> float | None:
        with self._lock:
            times = [j.eta or j.created_at for j in self._jobs.values() if is_claimable(j, now())]
        return min(times) if times else None

    def purge(self, *, states: Iterable[JobState] | None = None, older_than: float | None = None) -> int:
        wanted = set(states) if states else None
        with self._lock:
            doomed = [
                jid for jid, j in self._jobs.items()
                if j.is_terminal() and (wanted is None or j.state in wanted)
                and (older_than is None or (j.finished_at or j.updated_at) < older_than)
            ]
            for jid in doomed:
                del self._jobs[jid]
        return len(doomed)

    def register_worker(self, info: WorkerInfo) -> None:
        with self._lock:
            self._workers[info.id] = info.model_copy()

    def list_workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [w.model_copy() for w in sorted(self._workers.values(), key=lambda w: w.started_at)]

    def close(self) -> None:
        """Nothing to release: the data lives as long as the process."""

    # -- results -----------------------------------------------------------------

    def save(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job.snapshot()

    def get_result(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        return job if job is not None and job.is_terminal() else None
