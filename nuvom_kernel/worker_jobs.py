"""The per-job half of the worker: from a claimed job to its recorded outcome.

:class:`JobFlow` is mixed into :class:`~nuvom_kernel.worker.Worker`: it holds
claimed jobs, hands started ones to executors (on the loop thread, or on the
executor thread whose attempt just ended), turns each report into an outcome
for the next round trip, and, once the backend recorded it, counts it, calls
the observer hooks and saves results to a separate result store.
"""

from __future__ import annotations

import heapq
import logging
import queue as stdqueue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from nuvom_kernel.context import JobContext
from nuvom_kernel.contracts import Completion, Executor, WorkItem, WorkResult
from nuvom_kernel.errors import PayloadError
from nuvom_kernel.execution import decide, error_info, run_async, run_sync
from nuvom_kernel.models import ErrorInfo, Job, JobState, Outcome, apply_outcome, now, start_update
from nuvom_kernel.payloads import args_envelope
from nuvom_kernel.task import Task

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.settings import NuvomSettings

log = logging.getLogger("nuvom.worker")

_COUNTERS = {"succeeded": "succeeded", "failed": "failed", "retry": "retried", "dead": "dead", "cancelled": "cancelled"}


class Held:
    """A job this worker holds (claimed, started, running or ended unrecorded)."""

    __slots__ = ("job", "task", "executor", "ctx", "started", "deferred", "reported", "ended")

    def __init__(self, job: Job, task: Task[Any] | None, executor: Executor) -> None:
        self.job = job
        self.task = task
        self.executor = executor  # the executor that runs it (the task's, or the worker's)
        self.ctx: JobContext | None = None
        self.started: float | None = None  # time.monotonic() when handed to the executor
        self.deferred: Outcome | None = None  # a soft-timed-out retry, applied when the thread ends
        self.reported = False  # the executor reported an ending (possibly a soft timeout)
        self.ended = False  # the code really stopped running


@dataclass
class WorkerStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    refused: int = 0  # completions refused because the lease was lost
    by_state: dict[str, int] = field(default_factory=dict)


class JobFlow:
    """Claimed job -> executor -> outcome -> recorded; see the module docstring."""

    # set by Worker.__init__ (see there for what each holds)
    app: Nuvom
    settings: NuvomSettings
    id: str
    stats: WorkerStats
    concurrency: int
    executor: Executor
    executor_name: str
    extra_executors: dict[str, Executor]
    _held: dict[str, Held]
    _held_lock: threading.Lock
    _dispatch_lock: threading.RLock
    _finished: list[Completion]
    _wake: threading.Event
    _hard_stop: threading.Event
    _buffer: deque[Held]
    _startable: deque[Held]
    _cancel_unstarted: stdqueue.SimpleQueue[str]
    _low_water: int
    _running: int
    _avg_run_secs: float | None
    _shares_storage: bool | None
    _job_store: Any
    _observed: dict[str, bool]
    _wrappers: tuple[str, ...]
    _retry_etas: list[float]
    _unsaved: deque[Job]
    _save_backoff: float
    _next_save_at: float

    def _accept(self, jobs: list[Job]) -> None:
        """Hold claimed jobs: renewed by the heartbeat, started when a slot frees."""
        if not jobs:
            return
        self.stats.claimed += len(jobs)
        find = self.app.tasks.find
        running = JobState.RUNNING
        helds = []
        for job in jobs:
            task = find(job.task)
            helds.append(Held(job, task, self._executor_for(task, job) if task is not None else self.executor))
        with self._held_lock:
            for held in helds:
                self._held[held.job.id] = held
        for held in helds:
            if held.job.state == running:  # claimed and started in one step
                self._startable.append(held)
            else:
                self._buffer.append(held)

    def _after_start(self, starts: list[Held], started: set[str]) -> None:
        """Started jobs wait for a slot; a refused start (cancelled meanwhile, or
        the lease was lost) is dropped: the job never ran here."""
        if not starts:
            return
        at = now()
        for held in starts:
            job = held.job
            if job.id in started:
                start_update(job, at)
                self._startable.append(held)
                continue
            with self._held_lock:
                self._held.pop(job.id, None)
            log.info("job %s was not started here: it was cancelled or its claim lapsed", job.id)

    def _dispatch_started(self) -> None:
        """Hand jobs whose start the backend recorded to executors with free slots."""
        if not self._startable:
            return
        skipped: list[Held] = []
        single = not self.extra_executors
        with self._dispatch_lock:
            while self._startable:
                held = self._startable[0]
                if held.task is not None and held.executor.free_slots() <= 0:
                    if single:
                        break
                    skipped.append(self._startable.popleft())  # the loop alone reads the counts
                    continue
                self._dispatch(held)
            self._startable.extendleft(reversed(skipped))

    def _dispatch_next(self) -> None:
        """On the thread whose attempt just ended (a slot is free): start the next
        started job at once, without a trip through the loop thread."""
        if self._hard_stop.is_set():
            return
        with self._dispatch_lock:
            while self._startable:
                held = self._startable[0]
                if held.task is not None and held.executor.free_slots() <= 0:
                    if self.extra_executors:
                        self._wake.set()  # another executor may have room: the loop looks further
                    return
                self._dispatch(held)

    def _dispatch(self, held: Held) -> bool:
        """Run the first started job (the caller holds the dispatch lock and has
        checked its executor's slot).  False if it needed no slot."""
        job, task = held.job, held.task
        if task is None:
            reason = (f"unknown task {job.task!r}: this worker has no such task registered "
                      "(run `nuvom discover tasks`, or start the worker with --tasks MODULE)")
            self._dead_now(held, reason)
            return False
        task_job = job
        if args_envelope(job.args, job.kwargs) is not None:  # stored through another serializer
            try:
                args, kwargs = self.app.decode_call(job)
            except PayloadError as exc:
                self._dead_now(held, str(exc))
                return False
            task_job = job.model_copy(update={"args": args, "kwargs": kwargs})  # the task's view; held.job stays stored
        with self._held_lock:
            self._startable.popleft()
            self._running += 1
        job = task_job
        deadline = None if not job.timeout_secs else time.monotonic() + job.timeout_secs
        ctx = JobContext(job=job, deadline=deadline, queue=self._job_store, app=self.app)
        held.ctx = ctx
        held.started = time.monotonic()
        plugins = self.app.plugins
        if task.is_async:
            call: Any = partial(run_async, task, ctx, plugins)
        else:
            call = partial(run_sync, task, ctx, plugins)
        if self._observed["nuvom_job_started"]:
            plugins.job_started(job)
        item = WorkItem(job=job, call=call, timeout_secs=job.timeout_secs, is_async=task.is_async,
                        modules=(task.module,), context=ctx, plugins=self._wrappers)
        try:
            held.executor.submit(item, partial(self._on_done, held))
        except Exception as exc:  # the executor refused it (shut down, say): the attempt failed
            log.exception("job %s: the %s executor refused it", job.id, getattr(held.executor, "name", "?"))
            self._on_done(held, WorkResult(job_id=job.id, ok=False, exception=exc,
                                           error=error_info(exc, job.attempts)), chain=False)
        return True

    def _dead_now(self, held: Held, reason: str) -> None:
        """The first started job cannot run here at all (unknown task, undecodable
        arguments): it ends ``dead`` without an attempt on an executor."""
        job = held.job
        assert job.token is not None
        outcome = Outcome(kind="dead", reason=reason,
                          error=ErrorInfo(attempt=job.attempts, type="nuvom.UnknownTask", message=reason))
        with self._held_lock:
            self._startable.popleft()
            held.reported = held.ended = True
            self._finished.append(Completion(job.id, job.token, outcome))

    def _executor_for(self, task: Task[Any], job: Job) -> Executor:
        name = job.executor or task.executor
        if name and name != self.executor_name:
            ex = self.extra_executors.get(name)
            if ex is None:
                ex = self.app.create_executor(name)
                ex.start(self.concurrency)
                self.extra_executors[name] = ex
            return ex
        return self.executor

    def _on_done(self, held: Held, result: WorkResult, chain: bool = True) -> None:
        """The executor's report of an ending, on whatever thread it comes from:
        decide the outcome, leave it for the next round trip, start the next job."""
        if (result.timed_out or result.cancelled) and held.ctx is not None:
            held.ctx.cancel_event.set()
        first = self._complete(held, result)
        if chain and not result.still_running and self._startable:
            self._dispatch_next()
        # wake the loop when the started jobs run low, or for the first outcome
        # since its last round trip (it times how long outcomes wait)
        if (first or len(self._startable) <= self._low_water) and not self._wake.is_set():
            self._wake.set()

    def _complete(self, held: Held, result: WorkResult) -> bool:
        """Turn a report into an outcome for the next round trip; True if it is
        the first one since the loop last collected them.  A job stays counted
        as running until its outcome is in ``_finished`` (the start budget never
        sees it in neither)."""
        job = held.job
        with self._held_lock:
            if held.reported:
                # the late second report of a soft-timed-out thread: it has really ended now
                held.ended = True
                if held.deferred is not None and job.token is not None:
                    self._finished.append(Completion(job.id, job.token, held.deferred))
                    return len(self._finished) == 1
                if self._held.get(job.id) is held:
                    del self._held[job.id]
                return False
            held.reported = True
            held.ended = not result.still_running
        if held.started is not None:
            took = time.monotonic() - held.started
            avg = self._avg_run_secs
            self._avg_run_secs = took if avg is None else 0.8 * avg + 0.2 * took
        assert job.token is not None
        outcome = decide(job, held.task, result, check_result=partial(self._check_result, job))
        if result.still_running and outcome.kind == "retry":
            # never a second copy while the first still runs: keep the lease until it ends
            held.deferred = outcome
            log.warning("job %s (%s) timed out; its thread still runs, so the retry waits until it ends",
                        job.id, job.task)
            with self._held_lock:
                self._running -= 1
            return False
        completion = Completion(job.id, job.token, outcome)
        with self._held_lock:
            self._running -= 1
            self._finished.append(completion)
            return len(self._finished) == 1

    def _check_result(self, job: Job, value: Any) -> Any:
        return self.app.encode_payload(value, f"result of task {job.task!r}")

    def _fail_unstorable(self, pending: list[Completion]) -> bool:
        """After a failed round trip: replace outcomes the store cannot encode
        (a result nested too deep, say) by a failure naming the cause, so one
        poison result never blocks the others.  True if any was replaced."""
        replaced = False
        for i, completion in enumerate(pending):
            try:
                completion.outcome.model_dump_json()
            except Exception as exc:
                attempt = completion.outcome.error.attempt if completion.outcome.error else 0
                message = f"the outcome could not be stored: {type(exc).__name__}: {exc}"
                log.error("job %s: %s; the job fails", completion.job_id, message)
                pending[i] = Completion(completion.job_id, completion.token, Outcome(
                    kind="failed", note="result could not be stored",
                    error=ErrorInfo(attempt=attempt, type="nuvom_kernel.errors.PayloadError", message=message)))
                replaced = True
        return replaced

    def _settle(self, completions: list[Completion], accepted: list[bool]) -> list[Held | None]:
        """Stop holding the jobs whose outcomes the round trip recorded (or refused)."""
        helds: list[Held | None] = []
        if not completions:
            return helds
        with self._held_lock:
            for completion in completions:
                held = self._held.get(completion.job_id)
                if held is not None and held.job.token != completion.token:
                    held = None  # a newer claim of the same job, not the attempt that ended
                helds.append(held)
                if held is None:
                    continue
                if held.ended:
                    del self._held[completion.job_id]
                else:
                    # outcome recorded at a soft timeout; the thread still runs and its
                    # late result will be discarded.  Stop renewing: nothing more to record.
                    held.job.token = None
        return helds

    def _after_finish(self, completions: list[Completion], accepted: list[bool], helds: list[Held | None]) -> None:
        """Counts, hooks and result saves for the recorded outcomes."""
        for completion, ok, held in zip(completions, accepted, helds):
            if held is None:
                continue
            if not ok:
                self.stats.refused += 1
                log.warning("job %s: outcome %s refused (the lease was lost to another worker)",
                            completion.job_id, completion.outcome.kind)
                continue
            self._record(held, completion.outcome)
            outcome = completion.outcome
            if outcome.kind == "retry" and outcome.eta is not None:
                # the backend counted the delay from its own time, during the round
                # trip that just returned: wake at now + delay, never before it is due
                heapq.heappush(self._retry_etas, now() + max(0.0, outcome.eta - outcome.at))

    def _record(self, held: Held, outcome: Outcome) -> None:
        kind = outcome.kind
        counter = _COUNTERS[kind]
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        if kind == "failed" and outcome.error is not None:
            log.warning("job %s (%s) failed: %s: %s", held.job.id, held.job.task, outcome.error.type, outcome.error.message)
        if self._shares_storage is None:
            self._shares_storage = self.app.shares_storage
        terminal = kind != "retry"
        save = terminal and not self._shares_storage
        observed = self._observed
        if not (save or observed["nuvom_job_finished"] or (kind == "retry" and observed["nuvom_job_retrying"])
                or (kind == "dead" and observed["nuvom_job_dead"])):
            return  # nothing needs the finished job: skip building it (the hot path)
        before = held.job  # not changed after its outcome: the record is a copy
        record = apply_outcome(held.job.snapshot(), outcome)
        if save:
            self._save_result(record)
        plugins = self.app.plugins
        if kind == "retry":
            delay = max(0.0, (outcome.eta or outcome.at) - outcome.at)
            plugins.job_retrying(record, outcome.error, delay)
        elif kind == "dead":
            plugins.job_dead(record, outcome.reason or "dead")
        plugins.job_finished(before, record)

    def _save_result(self, record: Job) -> bool:
        """Store a finished job in the separate result store; a failure keeps it
        for another try (``_retry_saves``), never dropping it."""
        try:
            self.app.results.save(record)
            return True
        except Exception as exc:
            if not self._unsaved:
                self._next_save_at = time.monotonic() + self._save_backoff
            self._unsaved.append(record)
            log.warning("job %s: storing its result in the %s result store failed (%s: %s); will retry",
                        record.id, self.settings.result_backend, type(exc).__name__, exc)
            return False

    def _retry_saves(self, force: bool = False) -> None:
        if not self._unsaved or (not force and time.monotonic() < self._next_save_at):
            return
        while self._unsaved:
            record = self._unsaved[0]
            try:
                self.app.results.save(record)
            except Exception:
                self._save_backoff = min(5.0, self._save_backoff * 2)
                self._next_save_at = time.monotonic() + self._save_backoff
                return
            self._unsaved.popleft()
            self._save_backoff = 0.05
        log.info("worker %s: every pending result is stored now", self.id)
