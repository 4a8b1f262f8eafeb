"""The worker loop: claim -> execute -> record, with leases and a graceful stop.

One loop thread talks to the queue backend: each round trip finishes the
attempts that ended since the last one and claims as many jobs as the
executor has free slots (``QueueBackend.exchange``).  A heartbeat thread
renews the leases of every job this worker holds and returns other workers'
expired leases to the queue.  Executors report endings through a callback
that only appends to a queue and wakes the loop.
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
from typing import TYPE_CHECKING, Any

from nuvom_kernel.backend_base import start_update
from nuvom_kernel.context import JobContext
from nuvom_kernel.contracts import Completion, Executor, WorkItem, WorkResult
from nuvom_kernel.errors import PayloadError, StoreError
from nuvom_kernel.execution import decide, run_async, run_sync
from nuvom_kernel.heartbeat import Heartbeat, stop_file
from nuvom_kernel.lifecycle import NuvomContext
from nuvom_kernel.models import (
    ErrorInfo,
    Job,
    JobState,
    Outcome,
    apply_outcome,
    now,
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


@dataclass
class _Held:
    job: Job
    task: Task[Any] | None
    ctx: JobContext | None = None
    started: float | None = None  # time.monotonic() when handed to the executor
    deferred: Outcome | None = None  # a soft-timed-out retry, applied when the thread ends
    reported: bool = False  # the executor reported an ending (possibly a soft timeout)
    ended: bool = False  # the code really stopped running


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
        self._held: dict[str, _Held] = {}
        self._held_lock = threading.Lock()
        self._done: stdqueue.SimpleQueue[tuple[str, WorkResult]] = stdqueue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._hard_stop = threading.Event()
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._started_at = now()
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Any = None
        self._heartbeat = Heartbeat(self)
        self._buffer: deque[Job] = deque()  # claimed, not started
        self._startable: deque[Job] = deque()  # start recorded by the backend, waiting for a slot
        self._max_unrecorded = self.settings.max_unrecorded
        self._cancel_unstarted: stdqueue.SimpleQueue[str] = stdqueue.SimpleQueue()
        self._running = 0  # attempts handed to executors whose first report is pending
        self._avg_run_secs: float | None = None
        self._shares_storage: bool | None = None  # app.shares_storage, read once per run
        self._job_store: Any = None  # app.jobs, where progress goes; read once per run
        self._observed: dict[str, bool] = dict.fromkeys(_JOB_HOOKS, True)  # until run() looks
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

    def _free_slots(self) -> int:
        return self.executor.free_slots()

    def _buffer_target(self) -> int:
        """How many claimed-but-unstarted jobs to keep at hand.

        Short jobs: a full batch, so one transaction feeds many jobs.  Long jobs
        (or unknown yet): just enough to refill the free slots, so one worker
        does not hoard work another idle worker could run.
        """
        if self._avg_run_secs is not None and self._avg_run_secs < 0.05:
            return self.settings.batch_size
        return max(1, min(self.settings.batch_size, self.concurrency))

    def _start_budget(self, unrecorded: int) -> int:
        """How many buffered jobs to start in the next round trip.

        Attempts at risk if this process is killed now — started (running or
        waiting for a slot) or ended with the outcome unrecorded — stay within
        ``concurrency`` plus, for short jobs, ``max_unrecorded``: a killed
        worker re-runs at most that many jobs.  Long jobs start only on free
        slots, so the store never shows more running than run.
        """
        # short jobs (under 50 ms, as for the claim buffer): a start recorded ahead
        # runs within a few job lengths, and the round trip stops pacing the slots
        short = self._avg_run_secs is not None and self._avg_run_secs < 0.05
        ahead = self._max_unrecorded if short else 0
        at_risk = self._running + unrecorded + len(self._startable)
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
            fresh = self._drain_completions() + self._cancel_buffered()
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
            budget = 0 if stopping else self._start_budget(len(pending))
            starts = [self._buffer.popleft() for _ in range(min(budget, len(self._buffer)))]
            budget -= len(starts)
            target = 0 if stopping else self._buffer_target() + self._free_slots()
            room = max(0, min(batch, target - len(self._buffer) - len(starts)))
            want_claim = room > 0 and (not self._buffer or room >= max(1, target // 2))
            idle = not self._buffer and not self._running and not self._startable
            flush_due = bool(pending) and (
                len(pending) >= self.concurrency or idle or stopping or budget <= 0
                or time.monotonic() - oldest_pending >= 0.002
            )
            claimed: list[Job] = []
            if starts or want_claim or flush_due:
                try:
                    reply = queue.exchange(
                        pending, self.queues, room if want_claim else 0, self.lease_secs, self.id,
                        starts={job.id: job.token for job in starts if job.token is not None},
                        start_now=budget if want_claim else 0,
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
                self._after_finish(done_now, reply.accepted)
                self._after_start(starts, reply.started)
                claimed = reply.claimed
                for job in claimed:
                    self._accept(job)
            self._dispatch_started()
            if stopping:
                with self._held_lock:
                    busy = bool(self._held)
                if not busy and not pending and self._done.empty():
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
                    busy = bool(self._held)
                if not busy and self._done.empty():
                    log.info("worker %s: queue empty, burst mode exits", self.id,
                             extra={"event": "worker.stopping", "worker_id": self.id, "reason": "burst: queue empty"})
                    return
            if claimed and len(claimed) == room:
                continue  # more work is likely waiting
            if fresh or claimed or starts:
                continue
            self._wake.wait(0.005 if pending else self._idle_wait(poll))
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

    def _after_start(self, starts: list[Job], started: set[str]) -> None:
        """Started jobs wait for a slot; a refused start (cancelled meanwhile, or
        the lease was lost) is dropped: the job never ran here."""
        at = now()
        for job in starts:
            if job.id in started:
                start_update(job, at)
                self._startable.append(job)
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
            with self._held_lock:
                held = self._held.get(jid)
            if held is not None and held.ctx is not None:  # it started meanwhile: signal it
                held.ctx.cancel_event.set()
                if held.task is not None:
                    self._executor_for(held.task, held.job).cancel(jid)
                continue
            for job in list(self._startable):
                if job.id == jid and job.token is not None:
                    self._startable.remove(job)
                    if held is not None:
                        held.reported = held.ended = True
                    out.append(Completion(jid, job.token, Outcome(kind="cancelled", reason="cancelled before it started")))

    def _release_buffer(self) -> None:
        """Give unstarted claims back at once so other workers can run them."""
        queue = self.app.queue
        while self._buffer:
            job = self._buffer.popleft()
            with self._held_lock:
                self._held.pop(job.id, None)
            try:
                if job.token is not None and queue.release(job.id, job.token):
                    log.debug("worker %s released unstarted job %s", self.id, job.id)
            except Exception:  # its lease expires instead, and the sweeper requeues it
                log.exception("worker %s: could not release job %s", self.id, job.id)

    def _drain_completions(self) -> list[Completion]:
        out: list[Completion] = []
        while True:
            try:
                job_id, result = self._done.get_nowait()
            except stdqueue.Empty:
                return out
            completion = self._complete(job_id, result)
            if completion is not None:
                out.append(completion)

    # -- dispatch ----------------------------------------------------------------

    def _accept(self, job: Job) -> None:
        """Hold a claimed job: renewed by the heartbeat, started when a slot frees."""
        self.stats.claimed += 1
        with self._held_lock:
            self._held[job.id] = _Held(job=job, task=self.app.tasks.find(job.task))
        if job.state == JobState.RUNNING:  # claimed and started in one step
            self._startable.append(job)
        else:
            self._buffer.append(job)

    def _dispatch_started(self) -> None:
        """Hand jobs whose start the backend recorded to executors with free slots."""
        skipped: list[Job] = []
        while self._startable:
            job = self._startable.popleft()
            with self._held_lock:
                held = self._held.get(job.id)
            if held is None:
                continue
            if held.task is not None and self._executor_for(held.task, job).free_slots() <= 0:
                skipped.append(job)
                if self.executor.free_slots() <= 0 and not self.extra_executors:
                    break
                continue
            self._dispatch(held)
        self._startable.extendleft(reversed(skipped))

    def _dispatch(self, held: _Held) -> None:
        job, task = held.job, held.task
        self._running += 1
        if task is None:
            reason = (f"unknown task {job.task!r}: this worker has no such task registered "
                      "(run `nuvom discover tasks`, or start the worker with --tasks MODULE)")
            self._done.put((job.id, WorkResult(job_id=job.id, ok=False, extra={"dead_reason": reason})))
            return
        if args_envelope(job.args, job.kwargs) is not None:  # stored through another serializer
            try:
                args, kwargs = self.app.decode_call(job)
            except PayloadError as exc:
                self._done.put((job.id, WorkResult(job_id=job.id, ok=False, extra={"dead_reason": str(exc)})))
                return
            job = job.model_copy(update={"args": args, "kwargs": kwargs})  # the task's view; held.job stays stored
        deadline = None if not job.timeout_secs else time.monotonic() + job.timeout_secs
        ctx = JobContext(job=job, deadline=deadline, queue=self._job_store, app=self.app)
        held.ctx = ctx
        held.started = time.monotonic()
        executor = self._executor_for(task, job)
        plugins = self.app.plugins
        if task.is_async:
            call: Any = lambda: run_async(task, ctx, plugins)  # noqa: E731
        else:
            call = lambda: run_sync(task, ctx, plugins)  # noqa: E731
        if self._observed["nuvom_job_started"]:
            plugins.job_started(job)
        item = WorkItem(job=job, call=call, timeout_secs=job.timeout_secs, is_async=task.is_async,
                        modules=(task.module,), context=ctx, plugins=plugins.execution_plugins())

        def done(result: WorkResult, _id: str = job.id) -> None:
            if result.timed_out or result.cancelled:
                ctx.cancel_event.set()
            self._done.put((_id, result))
            if not self._wake.is_set():  # put before the check: the loop clears, then drains
                self._wake.set()

        executor.submit(item, done)

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

    def _complete(self, job_id: str, result: WorkResult) -> Completion | None:
        with self._held_lock:
            held = self._held.get(job_id)
        if held is None:
            return None
        job = held.job
        if held.reported:
            # the late second report of a soft-timed-out thread: it has really ended now
            held.ended = True
            if held.deferred is not None and job.token is not None:
                return Completion(job.id, job.token, held.deferred)
            with self._held_lock:
                self._held.pop(job_id, None)
            return None
        held.reported = True
        held.ended = not result.still_running
        self._running -= 1
        if held.started is not None:
            took = time.monotonic() - held.started
            self._avg_run_secs = took if self._avg_run_secs is None else 0.8 * self._avg_run_secs + 0.2 * took
        assert job.token is not None
        dead_reason = result.extra.get("dead_reason")
        if dead_reason:
            outcome = Outcome(kind="dead", reason=dead_reason,
                              error=ErrorInfo(attempt=job.attempts, type="nuvom.UnknownTask", message=dead_reason))
            return Completion(job.id, job.token, outcome)
        outcome = decide(job, held.task, result,
                         check_result=lambda v: self.app.encode_payload(v, f"result of task {job.task!r}"))
        if result.still_running and outcome.kind == "retry":
            # never a second copy while the first still runs: keep the lease until it ends
            held.deferred = outcome
            log.warning("job %s (%s) timed out; its thread still runs, so the retry waits until it ends",
                        job.id, job.task)
            return None
        return Completion(job.id, job.token, outcome)

    def _after_finish(self, completions: list[Completion], accepted: list[bool]) -> None:
        for completion, ok in zip(completions, accepted):
            with self._held_lock:
                held = self._held.get(completion.job_id)
                if held is None:
                    continue
                if held.ended:
                    self._held.pop(completion.job_id, None)
                else:
                    # outcome recorded at a soft timeout; the thread still runs and its
                    # late result will be discarded.  Stop renewing: nothing more to record.
                    held.job.token = None
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
            leftover = self._drain_completions()
            if leftover:
                reply = queue.exchange(leftover, self.queues, 0, self.lease_secs, self.id)
                self._after_finish(leftover, reply.accepted)
        self._heartbeat.register("stopped")
        self.app.plugins.shutdown(ctx)
        try:
            stop_file(self.app.root, self.id).unlink()
        except (FileNotFoundError, OSError):
            pass
        counts = {k: n for k, n in vars(self.stats).items() if isinstance(n, int)}
        log.info("worker %s stopped: %s", self.id, ", ".join(f"{n} {k}" for k, n in counts.items()),
                 extra={"event": "worker.stopped", "worker_id": self.id, **counts})
