"""A pool of spawned child processes that live across jobs, with hard timeouts.

``concurrency`` slots each hold one child running at most one job.  A
supervisor thread waits on every child's result pipe (and a wake-up pipe),
records ``started``/``progress``/``result`` messages, notices a child that
died (end of file on its pipe) and enforces deadlines.  Stopping a child
(deadline, cancel, crash, recycling) happens on a short-lived helper thread
that terminates it, starts its replacement and then reports the job, so the
supervisor never blocks.  No signals are needed: everything goes through
pipes and ``Process.terminate()``, which works the same on Windows.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from nuvom_executor_process import results
from nuvom_executor_process.children import Child, spawn_child, stop_children
from nuvom_executor_process.options import ProcessOptions
from nuvom_executor_process.pool import (
    Run,
    Slot,
    Wakeup,
    backoff,
    deadline,
    encode_run,
    recycle_reason,
)
from nuvom_kernel.contracts import WorkItem, WorkResult
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.models import ErrorInfo

log = logging.getLogger("nuvom.executor.process")

#: ``multiprocessing.connection.wait`` on Windows waits on at most 63 handles (one is the wake-up pipe)
WINDOWS_MAX_CONCURRENCY = 60
_live: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


class ProcessExecutor:
    """Component ``process``: runs each attempt in a reusable spawned child."""

    name = "process"

    def __init__(self, options: ProcessOptions | None = None, *, root: str | Path | None = None) -> None:
        self.options = options or ProcessOptions()
        self.root = Path(root or os.getcwd()).resolve()
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._spawn_lock = threading.Lock()
        self._slots: list[Slot] = []
        self._pending: deque[Run] = deque()
        self._runs: dict[str, Run] = {}
        self._modules: dict[str, None] = {}  # task modules children imported safely: new ones preload them
        self._draining = False  # shutdown started: no new submissions
        self._closing = False  # children are being stopped: no replacements
        self._to_close: list[Child] = []  # retired children whose pipes the supervisor closes
        self._helpers: set[threading.Thread] = set()
        self._supervisor: threading.Thread | None = None
        # sends jobs to children, records progress and reports results, in order, so
        # neither a slow backend write nor a child slow to read blocks the supervisor
        self._courier: threading.Thread | None = None
        self._outbox: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._wakeup: Wakeup | None = None
        self._memory_warned = False

    # -- Executor protocol ---------------------------------------------------------

    def start(self, concurrency: int) -> None:
        if self._slots:
            return
        size = max(1, int(concurrency))
        if sys.platform == "win32" and size > WINDOWS_MAX_CONCURRENCY:
            raise ConfigError(f"concurrency={size} is too high for the process executor on Windows "
                              f"(at most {WINDOWS_MAX_CONCURRENCY} children per worker): lower it, or run "
                              "several workers")
        self._wakeup = Wakeup(*self._ctx.Pipe(duplex=False))
        self._slots = [Slot(i) for i in range(size)]
        for slot in self._slots:
            slot.child = self._spawn(slot)
        self._supervisor = threading.Thread(target=self._supervise, name="nuvom-process-supervisor", daemon=True)
        self._supervisor.start()
        self._courier = threading.Thread(target=self._deliver, name="nuvom-process-courier", daemon=True)
        self._courier.start()
        _live.add(self)

    def free_slots(self) -> int:
        with self._lock:
            idle = sum(1 for s in self._slots if s.child is not None and s.run is None)
            return max(0, idle - len(self._pending))

    def submit(self, item: WorkItem, done: Callable[[WorkResult], None]) -> None:
        run = Run(item=item, done=done)
        with self._lock:
            if not self._slots:
                raise RuntimeError("ProcessExecutor.submit() called before start()")
            if self._draining:
                raise RuntimeError("ProcessExecutor.submit() called after shutdown()")
            self._runs[item.job.id] = run
            self._pending.append(run)
            sends = self._assign_locked()
        self._later(self._send, sends)

    def cancel(self, job_id: str) -> bool:
        """Terminate the child running ``job_id`` (or drop it if it waits for a child);
        the attempt is reported with ``cancelled=True``."""
        with self._lock:
            run = self._runs.get(job_id)
            if run is None or run.reported:
                return False
            if run in self._pending:
                self._pending.remove(run)
                waiting = True
            else:
                waiting = False
                slot = next((s for s in self._slots if s.run is run), None)
                if slot is None or slot.child is None:
                    return False  # already being stopped (deadline or crash): that report stands
                child = slot.child
                slot.child = None
        if waiting:
            self._report(run, results.not_started(run.item.job, "cancelled before it started", cancelled_=True))
        else:
            self._helper(self._retire, slot, child, run, "cancel")
        return True

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop every child; ``wait`` first lets submitted jobs finish (up to ``timeout``)."""
        until = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closing or not self._slots:
                self._draining = self._closing = True
                return
            self._draining = True
            if wait:
                self._idle.wait_for(lambda: not self._runs, None if until is None else max(0.0, until - time.monotonic()))
            self._closing = True
            stopping = [(s.child, s.run is None) for s in self._slots if s.child is not None]
            for s in self._slots:
                s.child = None
            leftovers = list(self._runs.values())
            self._pending.clear()
        grace = self.options.terminate_grace_secs
        stop_children(stopping, self.options.stop_timeout_secs if wait else grace, grace)
        for run in leftovers:
            self._report(run, results.not_started(run.item.job, "the process executor was shut down while the "
                                                  "job ran or waited; its child was stopped", cancelled_=False))
        self._stopped.set()
        self._wake()
        if self._supervisor is not None:
            self._supervisor.join(5)
        self._outbox.put(None)
        if self._courier is not None:
            self._courier.join(5)
        for helper in list(self._helpers):
            helper.join(max(5.0, grace * 4))
        for child, _ in stopping:
            self._close(child)
        with self._lock:
            rest, self._to_close = self._to_close, []
        for child in rest:
            self._close(child)
        if self._wakeup is not None:
            self._wakeup.close()
        _live.discard(self)

    # -- children ------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> Child:
        with self._spawn_lock:
            return spawn_child(self._ctx, slot.index, self.root, list(self._modules),
                               logging.getLogger().getEffectiveLevel())

    def _respawn(self, slot: Slot, delay: float = 0.0) -> None:
        """Give ``slot`` a fresh child (now, or after ``delay`` via the supervisor)."""
        child: Child | None = None
        if delay <= 0 and not self._closing:
            try:
                child = self._spawn(slot)
            except Exception:
                log.exception("could not start a child process for slot %d; retrying shortly", slot.index)
                slot.failures += 1
                delay = backoff(slot.failures)
        with self._lock:
            slot.run = None
            if self._closing:
                stale, child = child, None
            else:
                stale = None
                slot.child = child
                slot.respawn_at = None if child is not None else time.monotonic() + delay
            sends = self._assign_locked()
            self._idle.notify_all()
        if stale is not None:
            stale.terminate(self.options.terminate_grace_secs)
            self._dispose(stale)
        self._wake()
        self._later(self._send, sends)

    def _retire(self, slot: Slot, child: Child, run: Run | None, why: str) -> None:
        """Runs on a helper thread: stop ``child``, replace it, report ``run``."""
        grace = self.options.terminate_grace_secs
        try:
            if why == "recycle":
                self._respawn(slot)
                child.stop(self.options.stop_timeout_secs, grace)
                return
            if why == "crash":
                child.process.join(self.options.stop_timeout_secs)
            child.terminate(grace)
            code = child.process.exitcode
            startup_failure = why == "crash" and not child.ready
            if startup_failure:
                slot.failures += 1
                log.error("a process executor child (pid %s) %s before it was ready (%d in a row); its "
                          "standard error says why", child.pid, results.describe_exit(code), slot.failures)
            elif why == "crash":
                log.warning("a process executor child (pid %s) %s%s", child.pid, results.describe_exit(code),
                            f" while running job {run.item.job.id}" if run else " while idle")
            if run is not None and startup_failure and slot.failures < 3:
                with self._lock:  # the job never reached the task: give it to the next child
                    slot.run = None
                    run.sent_mono = None
                    self._pending.appendleft(run)
                run = None
            self._respawn(slot, backoff(slot.failures) if startup_failure else 0.0)
            if run is not None:  # after any progress the child sent before it ended
                self._later(self._report, run, self._ending(why, run, child, code))
        finally:
            self._dispose(child)

    def _ending(self, why: str, run: Run, child: Child, code: int | None) -> WorkResult:
        job = run.item.job
        if why == "timeout":
            return results.timed_out(job, child.pid, code, started=run.started_mono is not None,
                                     started_at=run.started_at, start_timeout=self.options.start_timeout_secs)
        if why == "cancel":
            return results.cancelled(job, child.pid, code, run.started_at)
        return results.crashed(job, child.pid, code, before_ready=not child.ready, started_at=run.started_at)

    def _dispose(self, child: Child) -> None:
        child.close_send()
        with self._lock:
            self._to_close.append(child)
        self._wake()

    @staticmethod
    def _close(child: Child) -> None:
        child.close_send()
        child.res_r.close()
        child.release()

    def _helper(self, target: Callable[..., None], *args: Any) -> None:
        def body() -> None:
            try:
                target(*args)
            except Exception:
                log.exception("process executor: stopping or replacing a child failed")
            finally:
                self._helpers.discard(thread)

        thread = threading.Thread(target=body, name="nuvom-process-retire", daemon=True)
        self._helpers.add(thread)
        thread.start()

    # -- dispatch and reports --------------------------------------------------------

    def _assign_locked(self) -> list[tuple[Slot, Child, Run]]:
        sends: list[tuple[Slot, Child, Run]] = []
        if self._closing:
            return sends
        for slot in self._slots:
            if not self._pending:
                break
            if slot.child is not None and slot.run is None:
                run = self._pending.popleft()
                slot.run = run
                run.sent_mono = time.monotonic()
                sends.append((slot, slot.child, run))
        return sends

    def _send(self, sends: list[tuple[Slot, Child, Run]]) -> None:
        for slot, child, run in sends:
            item = run.item
            path = tuple(sys.path)
            try:
                data = encode_run(item, path if path != child.path_sent else None)
            except Exception as exc:
                with self._lock:
                    if slot.run is run:
                        slot.run = None
                    sends_again = self._assign_locked()
                error = ErrorInfo(attempt=item.job.attempts, type="nuvom_kernel.errors.PayloadError",
                                  message=f"the job's arguments cannot be sent to a child process: {exc}")
                self._report(run, WorkResult(job_id=item.job.id, ok=False, error=error))
                self._send(sends_again)
                continue
            child.path_sent = path
            try:
                child.send_data(data)
            except (OSError, ValueError):
                pass  # the child is gone: its end of file reports the job as crashed

    def _later(self, action: Callable[..., None], *args: Any) -> None:
        self._outbox.put((action, args))

    def _deliver(self) -> None:
        while True:
            entry = self._outbox.get()
            if entry is None:
                return
            action, args = entry
            try:
                action(*args)
            except Exception:
                log.exception("process executor: delivering to a child or to the worker failed")

    def _report(self, run: Run, result: WorkResult) -> None:
        with self._lock:
            if run.reported:
                return
            run.reported = True
            if self._runs.get(run.item.job.id) is run:
                del self._runs[run.item.job.id]
            self._idle.notify_all()
        try:
            run.done(result)
        except Exception:
            log.exception("job %s: completion callback failed", run.item.job.id)

    def _progress(self, run: Run, value: Any) -> None:
        context = getattr(run.item, "context", None)  # the worker's JobContext, when it passes one
        try:
            if context is not None:
                context.set_progress(value)
            else:
                run.item.job.progress = value
        except Exception:
            log.exception("job %s: recording progress failed", run.item.job.id)

    # -- the supervisor thread ---------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _supervise(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while not self._stopped.is_set():
            with self._lock:
                closing, self._to_close = self._to_close, []
                watch = {s.child.res_r: (s, s.child) for s in self._slots if s.child is not None}
                timeout = self._next_timer_locked()
            for child in closing:
                self._close(child)
            try:
                ready = wait([wakeup.reader, *watch], timeout)
            except OSError:
                if self._stopped.is_set():
                    return
                raise
            for conn in ready:
                if conn is wakeup.reader:
                    wakeup.clear()
                else:
                    slot, child = watch[conn]  # type: ignore[index]
                    self._read(slot, child)
            self._check_timers()

    def _read(self, slot: Slot, child: Child) -> None:
        try:
            while slot.child is child and child.res_r.poll():
                message = pickle.loads(child.res_r.recv_bytes())
                self._handle(slot, child, message)
        except (EOFError, OSError):
            with self._lock:
                if slot.child is not child:
                    return
                slot.child = None
                run = slot.run
            self._helper(self._retire, slot, child, run, "crash")

    def _handle(self, slot: Slot, child: Child, message: tuple[Any, ...]) -> None:
        kind = message[0]
        with self._lock:
            if slot.child is not child:
                return
            if kind == "ready":
                child.ready = True
                slot.failures = 0
                return
            run = slot.run
            if run is None or run.item.job.id != message[1]:
                return  # about an attempt this slot no longer runs
            if kind == "started":
                run.started_mono = time.monotonic()
                run.started_at = float(message[2])
                return
            if kind == "result":
                payload = message[2]
                slot.run = None
                child.tasks_done += 1
                for spec in run.item.modules:  # a child survived importing it: preload it from now on
                    self._modules.setdefault(spec, None)
                recycle = self._recycle_reason(child, payload.get("rss_mb"))
                if recycle:
                    log.info("recycling process executor child pid %s: %s", child.pid, recycle)
                    slot.child = None
                sends = self._assign_locked()
        if kind == "progress":
            self._later(self._progress, run, message[2])
        elif kind == "result":
            if recycle:
                self._helper(self._retire, slot, child, None, "recycle")
            self._later(self._report, run, results.from_payload(run.item.job, payload))
            self._later(self._send, sends)

    def _recycle_reason(self, child: Child, rss_mb: float | None) -> str | None:
        if self.options.max_memory_per_child and rss_mb is None and not self._memory_warned:
            self._memory_warned = True
            log.warning("max_memory_per_child is set but this platform cannot measure a child's memory; "
                        "children are not recycled for memory")
        return recycle_reason(self.options, child.tasks_done, rss_mb)

    def _deadline(self, run: Run) -> float | None:
        return deadline(run, self.options)

    def _next_timer_locked(self) -> float | None:
        times = [t for s in self._slots for t in (
            self._deadline(s.run) if s.run is not None and s.child is not None else None,
            s.respawn_at if s.child is None else None,
        ) if t is not None]
        return None if not times else max(0.0, min(times) - time.monotonic())

    def _check_timers(self) -> None:
        now_m = time.monotonic()
        expired: list[tuple[Slot, Child]] = []
        respawn: list[Slot] = []
        with self._lock:
            for s in self._slots:
                if s.child is not None and s.run is not None:
                    deadline = self._deadline(s.run)
                    if deadline is not None and deadline <= now_m:
                        expired.append((s, s.child))
                elif s.child is None and s.respawn_at is not None and s.respawn_at <= now_m:
                    s.respawn_at = None
                    respawn.append(s)
        for slot, child in expired:
            self._read(slot, child)  # a result that arrived at the deadline wins
            with self._lock:
                run = slot.run
                if slot.child is not child or run is None:
                    continue
                deadline = self._deadline(run)
                if deadline is None or deadline > time.monotonic():
                    continue
                slot.child = None
            self._helper(self._retire, slot, child, run, "timeout")
        for slot in respawn:
            self._helper(self._respawn, slot)


@atexit.register
def _stop_all() -> None:
    """Children are not daemons (a task may start processes), so stop them before
    multiprocessing joins them at interpreter exit."""
    for executor in list(_live):
        try:
            executor.shutdown(wait=False, timeout=2.0)
        except Exception:  # pragma: no cover - best effort at exit
            pass
