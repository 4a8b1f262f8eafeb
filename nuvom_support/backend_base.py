"""Shared state-machine steps and defaults for queue backends.

Backends differ in how they make a change atomic (a lock, a transaction, a
rename, a script); *what* the change is lives here once, so a job moves the
same way on every backend.  Each ``*_update`` function mutates a :class:`Job`
in place; the backend persists the result inside its atomic section.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Mapping, Sequence

from nuvom_kernel.contracts import Beat, Completion, Exchanged, poll_result
from nuvom_kernel.models import (
    LEASED_STATES,
    Job,
    JobState,
    Outcome,
    WorkerInfo,
    apply_outcome,
    now,
    set_fields,
    start_update,
    validate_id,
)

LIVE_STATES = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.CLAIMED, JobState.RUNNING})


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


def claim_update(job: Job, token: int, lease_secs: float, worker_id: str, at: float | None = None,
                 *, start: bool = False) -> Job:
    """Take the job for ``worker_id``: ``claimed`` with a lease and a new token.

    The attempt is not counted until the worker starts it (:func:`start_update`);
    ``start=True`` claims and starts in one step (the worker has a free slot).
    A job whose lease already expired while it ran (``lease_expiries > 0``) is
    never started at claim time: only claimed, so that the worker starts it
    when a slot is free and a worker killed before running it does not spend
    its lease-expiry budget (see :func:`starts_at_claim`).
    """
    at = now() if at is None else at
    set_fields(job, token=token, lease_expires_at=at + lease_secs, worker_id=worker_id)
    if start and starts_at_claim(job):
        return start_update(job, at)
    job.record(JobState.CLAIMED, at, f"claimed by {worker_id}")
    return job


def starts_at_claim(job: Job) -> bool:
    """May a claim start this job in the same step (``start_now``)?  Not once
    its lease expired while it ran: a worker that claims a batch and starts it
    ahead of its free slots may die before it runs them, and that death must
    not count against the job's ``max_lease_expiries``.  Such a job is claimed
    and started by the worker only on a free slot (``start``)."""
    return job.lease_expiries == 0


def can_start(job: Job, token: int) -> bool:
    return job.state == JobState.CLAIMED and job.token == token


def holds_lease(job: Job, token: int) -> bool:
    """``token`` is the live token of a claimed or running job."""
    return job.state in LEASED_STATES and job.token == token


def release_update(job: Job, at: float | None = None) -> Job:
    """Give back a claim that never started: nothing was counted."""
    job.token = None
    job.lease_expires_at = None
    job.worker_id = None
    job.record(JobState.QUEUED, at, "released unstarted")
    return job


def lease_expired(job: Job, at: float) -> bool:
    return job.state in LEASED_STATES and job.lease_expires_at is not None and job.lease_expires_at < at


def sweep_update(job: Job, at: float | None = None, dead: list[tuple[Job, Job]] | None = None) -> Job:
    """A lease expired: the worker died or hung.

    A job that never started goes back to the queue as it was.  A running
    job's attempt is not charged (a worker's death is not the task's
    failure): it is requeued and its ``lease_expiries`` grows; past
    ``max_lease_expiries`` it is ``dead`` (it probably kills its worker).
    ``dead``, when given, collects ``(before, after)`` copies of a job this
    call made dead, for :class:`~nuvom_kernel.contracts.Swept`.
    """
    at = now() if at is None else at
    worker = job.worker_id
    started = job.state == JobState.RUNNING
    before = job.snapshot() if dead is not None and started else None
    job.token = None
    job.lease_expires_at = None
    job.worker_id = None
    if not started:
        job.record(JobState.QUEUED, at, f"claim expired unstarted (worker {worker}); requeued")
        return job
    job.attempts = max(0, job.attempts - 1)
    job.lease_expiries += 1
    if job.lease_expiries > job.max_lease_expiries:
        job.reason = (
            f"lease expired {job.lease_expiries} times while running (budget {job.max_lease_expiries}; "
            f"last worker {worker}): the task probably kills or hangs its worker"
        )
        job.finished_at = at
        job.record(JobState.DEAD, at, job.reason)
        if dead is not None and before is not None:
            dead.append((before, job.snapshot()))
    else:
        job.record(JobState.QUEUED, at, f"lease expired while running (worker {worker}); "
                                        f"redelivered, retries not used ({job.lease_expiries} of "
                                        f"{job.max_lease_expiries} lease expiries)")
    return job


def cancel_update(job: Job, reason: str, at: float | None = None) -> bool:
    """Cancel at once if not started; flag a running job.  False if terminal."""
    at = now() if at is None else at
    if job.state in (JobState.QUEUED, JobState.SCHEDULED, JobState.CLAIMED):
        # a claimed job never started: its worker's start is refused
        job.token = None
        job.lease_expires_at = None
        job.worker_id = None
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
    job.lease_expiries = 0
    job.record(JobState.QUEUED, at, "retried by operator")
    return job


def finish_update(job: Job, token: int, outcome: Outcome, at: float | None = None) -> bool:
    """Apply ``outcome`` if ``token`` is the live one; False (nothing changed) otherwise.

    A claimed job may be finished without starting (``dead`` for an unknown
    task, ``cancelled`` before it started)."""
    if job.token != token or job.state not in LEASED_STATES:
        return False
    apply_outcome(job, outcome, now() if at is None else at)  # the backend's clock stamps it
    if job.cancel_requested:
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


class ResultStoreBase:
    """A polling ``wait`` for result stores that have ``get_result``."""

    def wait(self, job_id: str, timeout: float | None = None) -> Job | None:
        return poll_result(self.get_result, job_id, timeout)  # type: ignore[attr-defined]


class ViaExchange:
    """``claim``, ``start`` and ``finish`` for a backend whose ``exchange``
    finishes, starts and claims in one round trip: each is an exchange with
    the other parts empty.  List it before :class:`QueueBackendBase`."""

    def claim(self, queues: Sequence[str], limit: int, lease_secs: float, worker_id: str,
              *, start_now: int = 0) -> list[Job]:
        return self.exchange((), queues, limit, lease_secs, worker_id, start_now=start_now).claimed  # type: ignore[attr-defined,no-any-return]

    def start(self, leases: Mapping[str, int]) -> set[str]:
        return self.exchange((), (), 0, 0.0, "", starts=leases).started  # type: ignore[attr-defined,no-any-return]

    def finish(self, job_id: str, token: int, outcome: Outcome) -> bool:
        return self.exchange((Completion(job_id, token, outcome),), (), 0, 0.0, "").accepted[0]  # type: ignore[attr-defined,no-any-return]


class QueueBackendBase(ResultStoreBase, abc.ABC):
    """Defaults a backend may inherit: ``enqueue_many`` and ``exchange`` as
    loops, and an in-process doorbell.  Override them when one round trip can
    do the work (the SQLite backend does)."""

    def __init__(self) -> None:
        self.doorbell = Doorbell()

    @abc.abstractmethod
    def enqueue(self, job: Job) -> Job: ...

    @abc.abstractmethod
    def claim(self, queues: Sequence[str], limit: int, lease_secs: float, worker_id: str,
              *, start_now: int = 0) -> list[Job]: ...

    @abc.abstractmethod
    def start(self, leases: Mapping[str, int]) -> set[str]: ...

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
        *,
        starts: Mapping[str, int] | None = None,
        start_now: int = 0,
    ) -> Exchanged:
        accepted = [self.finish(c.job_id, c.token, c.outcome) for c in completions]
        started = self.start(starts) if starts else set()
        claimed = self.claim(queues, limit, lease_secs, worker_id, start_now=start_now) if limit > 0 else []
        return Exchanged(accepted, claimed, started)

    def heartbeat(self, worker: WorkerInfo | None, leases: Mapping[str, int], lease_secs: float) -> Beat:
        """Registration, renewal and cancellation requests, composed from the
        separate calls; a backend that can do it in one round trip overrides it."""
        register = getattr(self, "register_worker", None)
        if worker is not None and register is not None:
            register(worker)
        lost = self.renew(leases, lease_secs) if leases and lease_secs > 0 else set()  # type: ignore[attr-defined]
        watch = [jid for jid in leases if jid not in lost]
        cancel = self.cancel_requests(watch) if watch else set()
        return Beat(lost, cancel)

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self.doorbell.subscribe(callback)

    def cancel_requests(self, job_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for job_id in job_ids:
            job = self.get(job_id)  # type: ignore[attr-defined]
            if job is not None and job.state == JobState.RUNNING and job.cancel_requested:
                out.add(job_id)
        return out
