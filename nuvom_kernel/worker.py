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
from typing import TYPE_CHECKING, Any

from nuvom_kernel.contracts import Completion, Executor
from nuvom_kernel.errors import StoreError
from nuvom_kernel.heartbeat import Heartbeat, stop_file
from nuvom_kernel.lifecycle import NuvomContext
from nuvom_kernel.models import (
    Job,
    Outcome,
    now,
    validate_id,
)
from nuvom_kernel.worker_jobs import Held, JobFlow, WorkerStats

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom

log = logging.getLogger("nuvom.worker")

#: observer hooks the worker calls per job; it skips the work for those no plugin implements
_JOB_HOOKS = ("nuvom_job_started", "nuvom_job_finished", "nuvom_job_retrying", "nuvom_job_dead")


#: jobs shorter than this (on average) are "short": their starts are recorded ahead
#: of free slots, within ``max_unrecorded``, so the round trip does not pace them
_SHORT_SECS = 0.05
#: longest an outcome waits for a round trip while other started jobs keep the
#: executor busy (a round trip is due at once when they run low)
_MAX_OUTCOME_AGE = 0.002


class Worker(JobFlow):
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
        self._held: dict[str, Held] = {}
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
        self._buffer: deque[Held] = deque()  # claimed, not started (the loop's own)
        self._startable: deque[Held] = deque()  # start recorded by the backend, waiting for a slot
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
        """How many claimed-but-unstarted jobs to keep at hand.  Short jobs: none (claimed
        and started in one step, as the start budget allows).  Long jobs (or unknown yet):
        enough to refill the free slots, so one worker does not hoard work another could run."""
        if self._short_jobs():
            return 0
        return max(1, min(self.settings.batch_size, self.concurrency))

    def _start_budget(self, at_risk: int) -> int:
        """How many jobs the next round trip may start.  Attempts at risk if this process is
        killed now (started, running or waiting for a slot, or ended with the outcome
        unrecorded) stay within ``concurrency`` plus, for short jobs, ``max_unrecorded``: a
        killed worker re-runs at most that many.  ``at_risk`` leaves out the outcomes the
        round trip records (a backend records finishes before starts).  Long jobs start only
        on free slots, so the store never shows more running than run."""
        ahead = self._max_unrecorded if self._short_jobs() else 0
        return max(0, self.concurrency + ahead - at_risk)

    def _take_starts(self, budget: int, free: int) -> list[Held]:
        """Buffered claims to start next, in claim order, up to ``budget``; a job whose lease
        expired while it ran only on a free slot (a worker killed before running it must not
        spend its lease-expiry budget)."""
        starts: list[Held] = []
        while self._buffer and len(starts) < budget and not (self._buffer[0].job.lease_expiries and len(starts) >= free):
            starts.append(self._buffer.popleft())
        return starts

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
            starts: list[Held] = []
            room = 0
            if due and budget > 0:
                starts = self._take_starts(budget, self.concurrency - at_risk)
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
