"""The worker loop: claim -> execute -> record, with leases and a graceful stop.

One loop thread talks to the queue backend, and only in batches: each round
trip (``QueueBackend.exchange``) records every outcome decided since the last
one, records the starts of the next jobs and claims more.  The executor's
threads do the per-job work themselves: when an attempt ends, the thread that
reports it decides the outcome, leaves it in a shared list and hands the next
started job to the executor, without waking the loop; the loop is woken when
the started jobs run low, when nothing is left to run, or when an outcome has
waited long enough.  A heartbeat thread renews the leases of every job this
worker holds and returns other workers' expired leases to the queue.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue as stdqueue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from nuvom_kernel.context import JobContext
from nuvom_kernel.contracts import Completion, Executor, WorkItem, WorkResult
from nuvom_kernel.errors import PayloadError, StoreError
from nuvom_kernel.execution import decide, error_info, run_async, run_sync
from nuvom_kernel.heartbeat import Heartbeat, stop_file
from nuvom_kernel.lifecycle import NuvomContext
from nuvom_kernel.models import (
    ErrorInfo,
    Job,
    JobState,
    Outcome,
    apply_outcome,
    now,
    start_update,
    validate_id,
)
from nuvom_kernel.payloads import args_envelope
from nuvom_kernel.task import Task

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom

log = logging.getLogger("nuvom.worker")

_COUNTERS = {"succeeded": "succeeded", "failed": "failed", "retry": "retried", "dead": "dead", "cancelled": "cancelled"}
#: observer hooks the worker calls per job; it skips the work for those no plugin implements
_JOB_HOOKS = ("nuvom_job_started", "nuvom_job_finished", "nuvom_job_retrying", "nuvom_job_dead")


#: jobs shorter than this (on average) are "short": their starts are recorded ahead
#: of free slots, within ``max_unrecorded``, so the round trip does not pace them
_SHORT_SECS = 0.05
#: longest an outcome waits for a round trip while other started jobs keep the
#: executor busy (a round trip is due at once when they run low)
_MAX_OUTCOME_AGE = 0.002


class _Held:
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


class Worker:
    """Runs jobs from ``queues`` until stopped (or, in ``burst`` mode, until none are left)."""

    def __init__(
        self,
        app: Nuvom,
        *,
        queues: Sequence[str] = ("default",),
        concurrency: int | None = None,
        executor: str | Executor | None = None,
        burst: bool = False,
        worker_id: str | None = None,
        executors: dict[str, Executor] | None = None,
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.queues = [validate_id(q, "queue name") for q in queues]
        self.concurrency = concurrency or self.settings.max_workers
        self.burst = burst
        self.id = validate_id(worker_id or f"{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}".replace("_", "-"), "worker id")
        if isinstance(executor, str) or executor is None:
            self.executor_name = executor or self.settings.executor
            self.executor: Executor = app.create_executor(self.executor_name)
        else:
            self.executor = executor
            self.executor_name = getattr(executor, "name", type(executor).__name__)
        self.extra_executors: dict[str, Executor] = dict(executors or {})
        self.lease_secs = self.settings.lease_secs
        self.stats = WorkerStats()
        # _held_lock guards _held and the counts the start budget reads
        # (_running, _startable's length, _finished), so that a job is always
        # counted in one of them; _dispatch_lock serialises handing jobs to
        # executors (the loop and executor threads both do).  Order: dispatch, then held.
        self._held: dict[str, _Held] = {}
        self._held_lock = threading.Lock()
        self._dispatch_lock = threading.RLock()
        self._finished: list[Completion] = []  # outcomes decided, not yet sent to the backend
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._hard_stop = threading.Event()
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._started_at = now()
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Any = None
        self._heartbeat = Heartbeat(self)
        self._buffer: deque[_Held] = deque()  # claimed, not started (the loop's own)
        self._startable: deque[_Held] = deque()  # start recorded by the backend, waiting for a slot
        self._max_unrecorded = self.settings.max_unrecorded
        # a round trip is due when this few started jobs are left to run
        self._low_water = max(1, self.concurrency // 2)
        self._cancel_unstarted: stdqueue.SimpleQueue[str] = stdqueue.SimpleQueue()
        self._running = 0  # attempts handed to executors whose first report is pending
        self._avg_run_secs: float | None = None
        self._shares_storage: bool | None = None  # app.shares_storage, read once per run
        self._job_store: Any = None  # app.jobs, where progress goes; read once per run
        self._observed: dict[str, bool] = dict.fromkeys(_JOB_HOOKS, True)  # until run() looks
        self._wrappers: tuple[str, ...] = ()  # plugins wrapping execution, read once per run
        self._retry_etas: list[float] = []  # heap: when retries this worker scheduled become due
        self._unsaved: deque[Job] = deque()  # finished jobs the separate result store refused so far
        self._save_backoff = 0.05
        self._next_save_at = 0.0
        self._stop_deadline: float | None = None

    # -- control -----------------------------------------------------------------

    def request_stop(self, hard: bool = False) -> None:
        """Ask the worker to stop: finish running jobs, release unstarted claims.
        Portable (no signals); ``hard`` also abandons running jobs to their leases."""
        self._stop.set()
        if hard:
            self._hard_stop.set()
        self._wake.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def held_job_ids(self) -> list[str]:
        with self._held_lock:
            return list(self._held)

    # -- main loop ---------------------------------------------------------------

    def run(self) -> WorkerStats:
        ctx = NuvomContext(settings=self.settings, role="worker", worker_id=self.id, app=self.app)
        queue = self.app.queue
        self._job_store = self.app.jobs if self.app.provides("jobs") else None
        self._observed = self._observed_hooks()
        self._wrappers = self.app.plugins.execution_plugins()
        self.executor.start(self.concurrency)
        for ex in self.extra_executors.values():
            ex.start(self.concurrency)
        self.app.plugins.startup(ctx)
        self._unsubscribe = queue.subscribe(self._wake.set)
        self._heartbeat.register("running")
        hb = threading.Thread(target=self._heartbeat.run, name=f"nuvom-heartbeat-{self.id}", daemon=True)
        hb.start()
        self._threads.append(hb)
        log.info("worker %s ready: queues=%s concurrency=%d executor=%s backend=%s",
                 self.id, ",".join(self.queues), self.concurrency, self.executor_name, self.settings.queue_backend,
                 extra={"event": "worker.ready", "worker_id": self.id, "queues": list(self.queues),
                        "concurrency": self.concurrency, "executor": self.executor_name,
                        "backend": self.settings.queue_backend})
        self._ready.set()
        try:
            self._loop()
        finally:
            self._shutdown(ctx)
        return self.stats

    def _short_jobs(self) -> bool:
        return self._avg_run_secs is not None and self._avg_run_secs < _SHORT_SECS

    def _buffer_target(self) -> int:
        """How many claimed-but-unstarted jobs to keep at hand.

        Short jobs: none; they are claimed and started in one step, as many as
        the start budget allows.  Long jobs (or unknown yet): just enough to
        refill the free slots, so one worker does not hoard work another idle
        worker could run.
        """
        if self._short_jobs():
            return 0
        return max(1, min(self.settings.batch_size, self.concurrency))

    def _start_budget(self, at_risk: int) -> int:
        """How many jobs the next round trip may start.

        Attempts at risk if this process is killed now — started (running or
        waiting for a slot) or ended with the outcome unrecorded — stay within
        ``concurrency`` plus, for short jobs, ``max_unrecorded``: a killed
        worker re-runs at most that many jobs.  ``at_risk`` leaves out the
        outcomes the round trip records: a backend records finishes before
        starts.  Long jobs start only on free slots, so the store never shows
        more running than run.
        """
        ahead = self._max_unrecorded if self._short_jobs() else 0
        return max(0, self.concurrency + ahead - at_risk)

    def _loop(self) -> None:
        queue = self.app.queue
        batch = self.settings.batch_size
        poll = self.settings.poll_interval_secs
        pending: list[Completion] = []
        oldest_pending = 0.0
        backoff = 0.0
        said_stopping = False
        while True:
            if self._hard_stop.is_set():
                return
            self._retry_saves()
            with self._held_lock:
                fresh, self._finished = self._finished, []
                waiting = len(self._startable)
                at_risk = self._running + waiting
            fresh += self._cancel_buffered()
            if fresh:
                if not pending:
                    oldest_pending = time.monotonic()
                pending.extend(fresh)
            stopping = self._stop.is_set()
            if stopping and not said_stopping:
                said_stopping = True
                log.info("worker %s stopping: running jobs finish, unstarted claims are released", self.id,
                         extra={"event": "worker.stopping", "worker_id": self.id})
            if stopping and self._buffer:
                self._release_buffer()
            budget = 0 if stopping else self._start_budget(at_risk)
            # a round trip is worth making now if the started jobs run low (or
            # nothing runs), if an outcome waited long enough, or when stopping;
            # otherwise the executor threads keep busy and outcomes gather
            low = waiting <= self._low_water
            age = time.monotonic() - oldest_pending if pending else 0.0
            due = low or stopping or (bool(pending) and age >= _MAX_OUTCOME_AGE)
            starts: list[_Held] = []
            room = 0
            if due and budget > 0:
                starts = [self._buffer.popleft() for _ in range(min(budget, len(self._buffer)))]
                budget -= len(starts)
                target = self._buffer_target() + budget
                room = max(0, min(batch, target - len(self._buffer)))
            want_claim = room > 0 and (not self._buffer or room >= max(1, self._buffer_target() // 2))
            flush_due = bool(pending) and due
            claimed: list[Job] = []
            if starts or want_claim or flush_due:
                try:
                    reply = queue.exchange(
                        pending, self.queues, room if want_claim else 0, self.lease_secs, self.id,
                        starts={h.job.id: h.job.token for h in starts if h.job.token is not None},
                        start_now=min(budget, room) if want_claim else 0,
                    )
                except Exception as exc:
                    # a backend hiccup (disk full, lock timeout, corrupt row) must not kill the
                    # worker or lose outcomes: keep them and try again after a pause
                    self._buffer.extendleft(reversed(starts))
                    if self._fail_unstorable(pending):
                        continue  # an outcome the store cannot encode failed alone; retry at once
                    backoff = min(5.0, backoff * 2 or 0.05)
                    # an environment fault (full disk, permissions) says what to do in one
                    # line; a traceback is for faults nobody foresaw, and only at first
                    if backoff < 5.0 and not isinstance(exc, StoreError):
                        log.exception("worker %s: the %s backend failed; retrying in %.2f s",
                                      self.id, self.settings.queue_backend, backoff,
                                      extra={"event": "worker.backend_error", "worker_id": self.id,
                                             "backend": self.settings.queue_backend, "delay": backoff})
                    else:  # one line per retry: a store fault, or past the first retries
                        log.error("worker %s: the %s backend fails (%s: %s); retrying in %.2g s",
                                  self.id, self.settings.queue_backend, type(exc).__name__, exc, backoff,
                                  extra={"event": "worker.backend_error", "worker_id": self.id,
                                         "backend": self.settings.queue_backend, "delay": backoff,
                                         "error_type": type(exc).__name__, "error_message": str(exc)})
                    # even when stopping: a stop request must not turn this pause into a busy loop
                    self._hard_stop.wait(backoff)
                    continue
                backoff = 0.0
                done_now, pending = pending, []
                # outcomes first: a retry may be claimed again in the same round
                # trip, and its hooks must see the attempts in order
                self._after_finish(done_now, reply.accepted, self._settle(done_now, reply.accepted))
                self._after_start(starts, reply.started)
                claimed = reply.claimed
                self._accept(claimed)
                self._dispatch_started()
            else:
                self._dispatch_started()
            if stopping:
                with self._held_lock:
                    busy = bool(self._held) or bool(self._finished)
                if not busy and not pending:
                    if not self._unsaved:
                        return
                    if self._stop_deadline is None:
                        self._stop_deadline = time.monotonic() + 30.0
                    elif time.monotonic() > self._stop_deadline:
                        log.error("worker %s: stopping with %d result(s) the %s result store still refuses: %s; "
                                  "the queue backend holds their outcomes", self.id, len(self._unsaved),
                                  self.settings.result_backend, ", ".join(r.id for r in self._unsaved))
                        return
            if self.burst and want_claim and not claimed and not pending and not self._buffer:
                with self._held_lock:
                    busy = bool(self._held) or bool(self._finished)
                if not busy:
                    log.info("worker %s: queue empty, burst mode exits", self.id,
                             extra={"event": "worker.stopping", "worker_id": self.id, "reason": "burst: queue empty"})
                    return
            if claimed and len(claimed) == room:
                continue  # more work is likely waiting: claim again if the budget allows
            if pending:
                wait = 0.005 if due else max(0.0002, _MAX_OUTCOME_AGE - age)
            else:
                wait = self._idle_wait(poll)
            self._wake.wait(wait)
            self._wake.clear()

    def _observed_hooks(self) -> dict[str, bool]:
        """Which per-job hooks some loaded plugin implements (plugins load once)."""
        plugins = self.app.plugins
        plugins.load()
        out: dict[str, bool] = {}
        for name in _JOB_HOOKS:
            caller = getattr(plugins.pm.hook, name, None)
            out[name] = caller is None or bool(caller.get_hookimpls())
        return out

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

    def _after_start(self, starts: list[_Held], started: set[str]) -> None:
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

    def _cancel_buffered(self) -> list[Completion]:
        """Started jobs still waiting for a slot whose cancellation was requested end now."""
        out: list[Completion] = []
        while True:
            try:
                jid = self._cancel_unstarted.get_nowait()
            except stdqueue.Empty:
                return out
            with self._dispatch_lock, self._held_lock:  # no slot is handed out meanwhile
                held = self._held.get(jid)
                if held is not None and held.ctx is None and held in self._startable and held.job.token is not None:
                    self._startable.remove(held)
                    held.reported = held.ended = True
                    out.append(Completion(jid, held.job.token,
                                          Outcome(kind="cancelled", reason="cancelled before it started")))
                    continue
            if held is not None and held.ctx is not None:  # it started meanwhile: signal it
                held.ctx.cancel_event.set()
                if held.task is not None:
                    held.executor.cancel(jid)

    def _release_buffer(self) -> None:
        """Give unstarted claims back at once so other workers can run them."""
        queue = self.app.queue
        while self._buffer:
            job = self._buffer.popleft().job
            with self._held_lock:
                self._held.pop(job.id, None)
            try:
                if job.token is not None and queue.release(job.id, job.token):
                    log.debug("worker %s released unstarted job %s", self.id, job.id)
            except Exception:  # its lease expires instead, and the sweeper requeues it
                log.exception("worker %s: could not release job %s", self.id, job.id)

    # -- dispatch ----------------------------------------------------------------

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
            helds.append(_Held(job, task, self._executor_for(task, job) if task is not None else self.executor))
        with self._held_lock:
            for held in helds:
                self._held[held.job.id] = held
        for held in helds:
            if held.job.state == running:  # claimed and started in one step
                self._startable.append(held)
            else:
                self._buffer.append(held)

    def _dispatch_started(self) -> None:
        """Hand jobs whose start the backend recorded to executors with free slots."""
        if not self._startable:
            return
        skipped: list[_Held] = []
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

    def _dispatch(self, held: _Held) -> bool:
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

    def _dead_now(self, held: _Held, reason: str) -> None:
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

    def _on_done(self, held: _Held, result: WorkResult, chain: bool = True) -> None:
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

    def _complete(self, held: _Held, result: WorkResult) -> bool:
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

    def _settle(self, completions: list[Completion], accepted: list[bool]) -> list[_Held | None]:
        """Stop holding the jobs whose outcomes the round trip recorded (or refused)."""
        helds: list[_Held | None] = []
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

    def _after_finish(self, completions: list[Completion], accepted: list[bool], helds: list[_Held | None]) -> None:
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

    def _idle_wait(self, poll: float) -> float:
        """Sleep until the next poll, or until a retry this worker scheduled is due
        (a retry rings no doorbell when its delay ends)."""
        if self._unsaved:
            poll = min(poll, max(0.001, self._next_save_at - time.monotonic()))
        etas = self._retry_etas
        at = now()
        while etas and etas[0] <= at:
            heapq.heappop(etas)
        if not etas:
            return poll
        return min(poll, max(0.001, etas[0] - at + 0.001))

    def _record(self, held: _Held, outcome: Outcome) -> None:
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

    def _shutdown(self, ctx: NuvomContext) -> None:
        queue = self.app.queue
        # the loop released unstarted claims; a hard stop leaves running jobs to
        # their leases, and the sweeper redelivers them
        self._stopped.set()
        for t in self._threads:
            t.join(timeout=5)
        if self._unsubscribe is not None:
            self._unsubscribe()
        hard = self._hard_stop.is_set()
        self.executor.shutdown(wait=not hard, timeout=None if not hard else 1.0)
        for ex in self.extra_executors.values():
            ex.shutdown(wait=not hard, timeout=None if not hard else 1.0)
        if not hard:
            with self._held_lock:
                leftover, self._finished = self._finished, []
            if leftover:
                reply = queue.exchange(leftover, self.queues, 0, self.lease_secs, self.id)
                self._after_finish(leftover, reply.accepted, self._settle(leftover, reply.accepted))
        self._heartbeat.register("stopped")
        self.app.plugins.shutdown(ctx)
        try:
            stop_file(self.app.root, self.id).unlink()
        except (FileNotFoundError, OSError):
            pass
        counts = {k: n for k, n in vars(self.stats).items() if isinstance(n, int)}
        log.info("worker %s stopped: %s", self.id, ", ".join(f"{n} {k}" for k, n in counts.items()),
                 extra={"event": "worker.stopped", "worker_id": self.id, **counts})
