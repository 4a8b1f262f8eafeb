"""The storage roles plugins implement (queue, job store, results, worker
registry, schedules) and the records they exchange with the worker;
``nuvom_kernel.testing`` proves them.  The other components' interfaces
(executor, discoverer, serializer, command context) are in
:mod:`nuvom_kernel.components` and re-exported here.

A component is created by the factory a plugin registers (see
``hookspecs.py``): ``factory(settings, options) -> component`` where
``settings`` is the effective :class:`~nuvom_kernel.settings.NuvomSettings`
and ``options`` the plugin's table from ``.nuvom_plugins.toml`` (a dict,
possibly empty).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from nuvom_kernel.models import Job, JobState, Outcome, WorkerInfo
from nuvom_kernel.schedules import Schedule, ScheduleState

if TYPE_CHECKING:
    from nuvom_kernel.settings import NuvomSettings

from nuvom_kernel.components import (  # noqa: E402 - re-exported: the documented import path
    CommandContext,
    Discoverer,
    DiscoveryReport,
    Executor,
    Serializer,
    WorkItem,
    WorkResult,
)
from nuvom_kernel.queries import JobFilter, JobPage, after_cursor, decode_cursor, encode_cursor  # noqa: E402

__all__ = [
    "CAPABILITIES", "Beat", "CommandContext", "Completion", "ComponentFactory", "Discoverer",
    "DiscoveryReport", "Exchanged", "Executor", "JobFilter", "JobPage", "JobStore", "QueueBackend",
    "ResultBackend", "ScheduleStore", "Serializer", "StorageBackend", "Swept", "WorkItem", "WorkResult",
    "WorkerRegistry", "after_cursor", "capabilities_of", "decode_cursor", "encode_cursor", "poll_result",
]


class Exchanged(NamedTuple):
    """What one worker round trip (:meth:`QueueBackend.exchange`) did."""

    #: per completion, in order: was the outcome accepted (the token was live)?
    accepted: list[bool]
    #: the jobs claimed, best first; the first ``start_now`` of them are running
    claimed: list[Job]
    #: ids of the requested ``starts`` that started (the rest were cancelled or lost)
    started: set[str]


class Swept(int):
    """What :meth:`QueueBackend.sweep` returns: the number of jobs it moved
    (an ``int``), with ``dead`` listing ``(before, after)`` for every job this
    sweep made ``dead`` (lease-expiry budget spent), so the worker that swept
    reports each death once: the ``nuvom_job_dead`` / ``nuvom_job_finished``
    hooks, and the result store when results live elsewhere."""

    dead: tuple[tuple[Job, Job], ...]

    def __new__(cls, moved: int = 0, dead: Iterable[tuple[Job, Job]] = ()) -> Swept:
        obj = super().__new__(cls, moved)
        obj.dead = tuple(dead)
        return obj


class Beat(NamedTuple):
    """What one worker heartbeat (:meth:`QueueBackend.heartbeat`) learnt."""

    #: ids whose lease this worker no longer holds (another attempt took over,
    #: or the job was cancelled while claimed): stop renewing, discard outcomes
    lost: set[str]
    #: ids of running jobs an operator asked to cancel
    cancel_requested: set[str]


@dataclass(frozen=True)
class Completion:
    """An attempt's end as the worker reports it: fenced by ``token``."""

    job_id: str
    token: int
    outcome: Outcome


@runtime_checkable
class QueueBackend(Protocol):
    """The hot path: stores new jobs and hands them to workers with leases.

    Operator actions and listings are the :class:`JobStore` role, results the
    :class:`ResultBackend` role, worker heartbeats the :class:`WorkerRegistry`
    role; a backend declares the roles it provides (``capabilities``, see
    :func:`capabilities_of`), and the kernel names a missing one clearly.

    Rules every implementation keeps (the contract suite checks each):

    - The backend's clock is authoritative for leases and eta: it stamps
      ``lease_expires_at`` and compares etas with its own time (SQLite and
      files: the host's clock; a networked backend: the server's).  Workers
      send durations (``lease_secs``) and outcomes whose retry delay is
      ``outcome.eta - outcome.at``; ``finish_update`` re-stamps them with the
      backend's time, so a worker's skewed clock changes nothing.
    - ``enqueue`` is durable when it returns.  A job with ``eta`` in the future
      is ``scheduled`` and not claimable before then.  If ``job.unique_key`` is
      set and a job with that key is live (queued, scheduled, claimed or
      running), the existing job is returned instead and nothing is added
      (atomically).  A job whose id is already stored is not added either: the
      stored job is returned (so a retried enqueue is idempotent).
    - ``claim`` atomically takes up to ``limit`` claimable jobs from ``queues``
      (higher ``priority`` first, then oldest first), moves them to
      ``claimed``, gives each a new ``token`` (strictly greater than any
      earlier token of that job) and a lease until ``now + lease_secs``.  The
      first ``start_now`` of them are started at once (below), except a job
      whose lease already expired while it ran (``lease_expiries > 0``): it is
      only claimed, so a worker dying before it runs it costs it nothing
      (``starts_at_claim``).  Two concurrent claims never return the same job.
    - ``start`` moves ``claimed`` jobs whose token matches to ``running``,
      counting the attempt (``attempts += 1``, ``started_at``).  A worker
      starts a job only after the store recorded the start, so a job that
      never ran is never charged an attempt.  Returns the ids started.
    - ``finish`` applies the outcome (use :func:`nuvom_support.backend_base.finish_update`)
      only if ``token`` is the job's current token and the job is ``claimed``
      or ``running``; otherwise it changes nothing and returns ``False``.
    - ``renew`` extends the leases still held (token matches, claimed or
      running) and returns the ids whose lease is lost.
    - ``release`` returns a ``claimed`` job to ``queued``.
    - ``sweep`` handles expired leases (:func:`~nuvom_support.backend_base.sweep_update`):
      a claimed job is requeued as it was; a running job is requeued without
      using its retries and its ``lease_expiries`` grows, ``dead`` past
      ``max_lease_expiries``.  Returns :class:`Swept`: the number of jobs
      it moved, listing the ones it made ``dead`` (pass a list to
      ``sweep_update(job, at, dead=...)`` to collect them).
    """

    def enqueue(self, job: Job) -> Job: ...

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]: ...

    def claim(self, queues: Sequence[str], limit: int, lease_secs: float, worker_id: str,
              *, start_now: int = 0) -> list[Job]: ...

    def start(self, leases: Mapping[str, int]) -> set[str]: ...

    def finish(self, job_id: str, token: int, outcome: Outcome) -> bool: ...

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
        """Finish ``completions``, start ``starts`` (id -> token), then claim up
        to ``limit`` jobs (starting the first ``start_now``), ideally in one
        round trip or transaction."""
        ...

    def renew(self, leases: Mapping[str, int], lease_secs: float) -> set[str]: ...

    def heartbeat(self, worker: WorkerInfo | None, leases: Mapping[str, int], lease_secs: float) -> Beat:
        """A worker's periodic call, ideally one round trip: refresh its
        registration (when ``worker`` is given), renew ``leases`` (when
        ``lease_secs`` > 0) and report which are lost and which running jobs
        have a cancellation request."""
        ...

    def release(self, job_id: str, token: int) -> bool: ...

    def sweep(self) -> Swept: ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when new work may be claimable;
        returns a function that unsubscribes.  Polling remains the fallback."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class JobStore(Protocol):
    """Operations on stored jobs: what operators, the CLI and dashboards use.

    Every backend that keeps jobs provides it (memory, file, SQLite do, in
    the same object as the queue).  ``purge`` goes by ``finished_at``.
    """

    def get(self, job_id: str) -> Job | None: ...

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50, cursor: str | None = None) -> JobPage:
        """Jobs newest first (``created_at``, then id), filtered, one page of at
        most ``limit``; keyset paging: ``cursor`` is the previous page's."""
        ...

    def cancel(self, job_id: str, reason: str = "cancelled") -> Job | None:
        """Cancel a ``queued``/``scheduled``/``claimed`` job at once (it never
        started); for a ``running`` one set ``cancel_requested``.  Returns the
        job after the change, or ``None``."""
        ...

    def cancel_requests(self, job_ids: Sequence[str]) -> set[str]:
        """Which of these ``running`` jobs have ``cancel_requested`` set (workers
        poll this for the jobs they hold)."""
        ...

    def retry(self, job_id: str) -> Job | None:
        """Re-queue a ``failed``/``dead``/``cancelled`` job as a new attempt of the
        same job (same id, history kept, one more attempt allowed)."""
        ...

    def set_progress(self, job_id: str, token: int, progress: Any) -> bool: ...

    def counts(self) -> dict[str, dict[str, int]]:
        """``{queue: {state: count}}`` over all jobs."""
        ...

    def oldest_queued_at(self) -> float | None: ...

    def purge(self, *, states: Iterable[JobState] | None = None, older_than: float | None = None) -> int:
        """Delete terminal jobs (only those in ``states`` if given) whose
        ``finished_at`` is before ``older_than``.  Never deletes live jobs."""
        ...



@runtime_checkable
class WorkerRegistry(Protocol):
    """Which workers exist and when they last heart-beat."""

    def register_worker(self, info: WorkerInfo) -> None: ...

    def list_workers(self) -> list[WorkerInfo]: ...



@runtime_checkable
class ScheduleStore(Protocol):
    """Stored schedules, and the atomic fire that makes leaderless schedulers
    fire each occurrence once (see :mod:`nuvom_kernel.schedules`; the rules
    every store applies are in :mod:`nuvom_support.schedules`).

    Rules every implementation keeps (``ScheduleStoreContract`` checks each):

    - ``add_schedule`` stores a copy.  If the id is taken, nothing is added
      and the stored schedule is returned; with ``replace=True`` a changed
      definition is written over it as :func:`~nuvom_support.schedules.merge_schedule`
      says (state and counters kept).
    - ``due_schedules(at, limit)``: ``active`` schedules whose
      ``next_fire_at <= at``, earliest first, at most ``limit``.
    - ``fire_schedule(id, expected_next, jobs, next_fire_at, ...)`` is one
      atomic step: if the schedule is ``active`` and its ``next_fire_at`` is
      still ``expected_next`` (:func:`~nuvom_support.schedules.can_fire`), it
      enqueues ``jobs`` (as ``enqueue_many`` does: an id already stored stays
      one job) and advances the schedule
      (:func:`~nuvom_support.schedules.apply_fire`), then returns ``True``;
      otherwise it changes nothing and returns ``False``.  Two racing calls
      for the same occurrence, from any processes, never both return ``True``.
    - ``set_schedule_state`` changes only the state and returns the schedule
      after the change (``None`` for an unknown id).
    - ``purge_schedules(states, older_than, include_code)`` deletes the
      schedules :func:`~nuvom_support.schedules.purgeable` accepts (ended
      ones: ``done``/``cancelled``, never active or paused; ``states``
      checked by :func:`~nuvom_support.schedules.purge_states`) and returns
      how many; their fired jobs are jobs like any other (``purge``).
    """

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> Schedule: ...

    def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    def list_schedules(self) -> list[Schedule]:
        """Every stored schedule, by id."""
        ...

    def due_schedules(self, at: float, limit: int) -> list[Schedule]: ...

    def fire_schedule(self, schedule_id: str, expected_next: float, jobs: Sequence[Job],
                      next_fire_at: float | None, *, missed: int = 0, coalesced: int = 0) -> bool: ...

    def set_schedule_state(self, schedule_id: str, state: ScheduleState) -> Schedule | None: ...

    def purge_schedules(self, *, states: Iterable[ScheduleState] | None = None, older_than: float | None = None,
                        include_code: bool = False) -> int: ...


@runtime_checkable
class ResultBackend(Protocol):
    """Keeps finished jobs (state, result, errors) for callers to read.

    When the queue and result backends are the same object, the worker does not
    call ``save``: ``QueueBackend.finish`` already stored the result.  When they
    differ, the worker saves every terminal job after the queue accepted its
    outcome, retrying a failed save until it succeeds (never dropping it).
    """

    def save(self, job: Job) -> None: ...

    def get_result(self, job_id: str) -> Job | None: ...

    def wait(self, job_id: str, timeout: float | None = None) -> Job | None:
        """Block until the finished job is stored (then return it) or ``timeout``
        seconds pass (then ``None``).  :class:`~nuvom_support.backend_base.ResultStoreBase`
        provides a polling default; a backend with a notification mechanism may
        do better."""
        ...

    def purge(self, *, older_than: float | None = None) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class StorageBackend(QueueBackend, JobStore, WorkerRegistry, Protocol):
    """Queue, job store and worker registry in one object, as the built-in
    backends are (the result role usually too)."""


#: The storage roles a backend may provide, and the protocol of each.
CAPABILITIES: dict[str, type] = {
    "queue": QueueBackend,
    "jobs": JobStore,
    "results": ResultBackend,
    "workers": WorkerRegistry,
    "schedules": ScheduleStore,
}


def capabilities_of(component: Any) -> frozenset[str]:
    """The roles ``component`` provides: its ``capabilities`` attribute when it
    declares one (a set of names from :data:`CAPABILITIES`), else every role
    whose protocol it implements."""
    declared = getattr(component, "capabilities", None)
    if declared is not None:
        return frozenset(declared)
    return frozenset(name for name, proto in CAPABILITIES.items() if isinstance(component, proto))


ComponentFactory = Callable[["NuvomSettings", dict[str, Any]], Any]


def poll_result(get_result: Callable[[str], Job | None], job_id: str, timeout: float | None) -> Job | None:
    """Call ``get_result`` with a growing pause (2 ms to 50 ms) until it returns a
    finished job, or ``None`` once ``timeout`` seconds passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while True:
        job = get_result(job_id)
        if job is not None and job.is_terminal():
            return job
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(delay, left))
        else:
            time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
