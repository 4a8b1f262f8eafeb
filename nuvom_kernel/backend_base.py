"""Shared state-machine steps and defaults for queue backends.

Backends differ in how they make a change atomic (a lock, a transaction, a
rename, a script); *what* the change is lives here once, so a job moves the
same way on every backend.  Each ``*_update`` function mutates a :class:`Job`
in place; the backend persists the result inside its atomic section.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence

from nuvom_kernel.contracts import Completion
from nuvom_kernel.models import Job, JobState, Outcome, apply_outcome, now, validate_id

LIVE_STATES = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING})


def enqueue_update(job: Job, at: float | None = None) -> Job:
    """Validate and stamp a new job: ``scheduled`` if its eta is in the future."""
    at = now() if at is None else at
    validate_id(job.id)
    validate_id(job.queue, "queue name")
    job.token = None
    job.lease_expires_at = None
    job.worker_id = None
    if job.eta is not None and job.eta > at:
        job.record(JobState.SCHEDULED, at, "enqueued with eta")
    else:
        job.record(JobState.QUEUED, at, "enqueued")
    return job


def is_claimable(job: Job, at: float) -> bool:
    if job.state == JobState.QUEUED:
        return True
    return job.state == JobState.SCHEDULED and (job.eta is None or job.eta <= at)


def claim_order_key(job: Job) -> tuple[float, float, str]:
    """Higher priority first, then the earlier of eta/created_at, then id."""
    ready_at = job.eta if job.eta is not None else job.created_at
    return (-job.priority, ready_at, job.id)


def claim_update(job: Job, token: int, lease_secs: float, worker_id: str, at: float | None = None) -> Job:
    at = now() if at is None else at
    job.attempts += 1
    job.token = token
    job.lease_expires_at = at + lease_secs
    job.worker_id = worker_id
    job.started_at = at
    job.record(JobState.RUNNING, at, f"attempt {job.attempts} by {worker_id}")
    return job


def release_update(job: Job, at: float | None = None) -> Job:
    """Undo a claim that never started: the attempt does not count."""
    job.attempts = max(0, job.attempts - 1)
    job.token = None
    job.lease_expires_at = None
    job.worker_id = None
    job.record(JobState.QUEUED, at, "released unstarted")
    return job


def lease_expired(job: Job, at: float) -> bool:
    return job.state == JobState.RUNNING and job.lease_expires_at is not None and job.lease_expires_at < at


def sweep_update(job: Job, at: float | None = None) -> Job:
    """A lease expired (the worker died or hung): requeue, or dead when out of attempts."""
    at = now() if at is None else at
    worker = job.worker_id
    job.token = None
    job.lease_expires_at = None
    job.worker_id = None
    if job.attempts >= job.max_attempts:
        job.reason = (
            f"lease expired on attempt {job.attempts} of {job.max_attempts} "
            f"(worker {worker} stopped heart-beating; the task may kill its process)"
        )
        job.finished_at = at
        job.record(JobState.DEAD, at, job.reason)
    else:
        job.record(JobState.QUEUED, at, f"lease expired (worker {worker}); redelivered")
    return job


def cancel_update(job: Job, reason: str, at: float | None = None) -> bool:
    """Cancel at once if not running; flag a running job.  False if terminal."""
    at = now() if at is None else at
    if job.state in (JobState.QUEUED, JobState.SCHEDULED):
        job.reason = reason
        job.finished_at = at
        job.record(JobState.CANCELLED, at, reason)
        return True
    if job.state == JobState.RUNNING:
        job.cancel_requested = True
        job.updated_at = at
        return True
    return False


def retry_update(job: Job, at: float | None = None) -> Job:
    """Operator retry of a finished job: same id, history kept, one more attempt."""
    at = now() if at is None else at
    job.max_retries = max(job.max_retries, job.attempts)
    job.eta = None
    job.reason = None
    job.cancel_requested = False
    job.finished_at = None
    job.result = None
    job.record(JobState.QUEUED, at, "retried by operator")
    return job


def finish_update(job: Job, token: int, outcome: Outcome) -> bool:
    """Apply ``outcome`` if ``token`` is the live one; False (nothing changed) otherwise."""
    if job.state != JobState.RUNNING or job.token != token:
        return False
    apply_outcome(job, outcome)
    job.cancel_requested = False
    return True


class Doorbell:
    """In-process listeners for "new work may be claimable"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def ring(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb()
            except Exception:  # a listener must never break an enqueue
                pass


class QueueBackendBase(abc.ABC):
    """Defaults a backend may inherit: ``enqueue_many`` and ``exchange`` as
    loops, and an in-process doorbell.  Override them when one round trip can
    do the work (the SQLite backend does)."""

    def __init__(self) -> None:
        self.doorbell = Doorbell()

    @abc.abstractmethod
    def enqueue(self, job: Job) -> Job: ...

    @abc.abstractmethod
    def claim(self, queues: Sequence[str], limit: int, lease_secs: float, worker_id: str) -> list[Job]: ...

    @abc.abstractmethod
    def finish(self, job_id: str, token: int, outcome: Outcome) -> bool: ...

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        return [self.enqueue(job) for job in jobs]

    def exchange(
        self,
        completions: Sequence[Completion],
        queues: Sequence[str],
        limit: int,
        lease_secs: float,
        worker_id: str,
    ) -> tuple[list[bool], list[Job]]:
        accepted = [self.finish(c.job_id, c.token, c.outcome) for c in completions]
        claimed = self.claim(queues, limit, lease_secs, worker_id) if limit > 0 else []
        return accepted, claimed

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self.doorbell.subscribe(callback)

    def cancel_requests(self, job_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for job_id in job_ids:
            job = self.get(job_id)  # type: ignore[attr-defined]
            if job is not None and job.state == JobState.RUNNING and job.cancel_requested:
                out.add(job_id)
        return out
