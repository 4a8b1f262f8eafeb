"""A fixed pool of threads, plus one event loop thread for ``async def`` tasks.

Timeouts on threads are soft: Python cannot stop a thread, so at the deadline
the attempt is reported as timed out (``still_running=True``), its slot stays
busy, and when the code finally returns it is reported again and that late
result is discarded.  Coroutines are cancelled for real at their deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from nuvom_kernel.contracts import WorkItem, WorkResult
from nuvom_kernel.execution import error_info
from nuvom_kernel.models import now

log = logging.getLogger("nuvom.executor.thread")
_STOP = object()


class _Run:
    """One submitted attempt.  ``finished`` and ``timed_out`` change under the executor's lock."""

    __slots__ = ("item", "done", "finished", "timed_out", "started_at", "future")

    def __init__(self, item: WorkItem, done: Callable[[WorkResult], None]) -> None:
        self.item = item
        self.done = done
        self.finished = False
        self.timed_out = False
        self.started_at = 0.0
        self.future: Future[Any] | None = None


class ThreadExecutor:
    """Component ``thread``: runs attempts on ``concurrency`` threads."""

    name = "thread"

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._size = 0
        self._runs: dict[str, _Run] = {}
        self._deadlines: list[tuple[float, int, _Run]] = []
        self._deadline_lock = threading.Lock()
        self._deadline_cv = threading.Condition(self._deadline_lock)
        self._seq = itertools.count()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._monitor: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self, concurrency: int) -> None:
        if self._threads:
            return
        self._size = max(1, int(concurrency))
        for i in range(self._size):
            t = threading.Thread(target=self._work, name=f"nuvom-thread-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self._monitor = threading.Thread(target=self._watch_deadlines, name="nuvom-timeouts", daemon=True)
        self._monitor.start()

    def free_slots(self) -> int:
        with self._lock:
            return max(0, self._size - self._busy)

    def submit(self, item: WorkItem, done: Callable[[WorkResult], None]) -> None:
        if not self._threads:
            raise RuntimeError("ThreadExecutor.submit() called before start()")
        run = _Run(item, done)
        with self._lock:
            self._busy += 1
            self._runs[item.job.id] = run
        if item.timeout_secs:
            self._add_deadline(time.monotonic() + item.timeout_secs, run)
        if item.is_async:
            self._submit_async(run)
        else:
            self._inbox.put(run)

    def cancel(self, job_id: str) -> bool:
        """Coroutines are cancelled; threads cannot be interrupted, so for them
        this returns False and the task must check ``current_job().is_cancelled()``."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is None or run.future is None:
            return False
        return run.future.cancel()

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._closing = True
        for _ in self._threads:
            self._inbox.put(_STOP)
        with self._deadline_cv:
            self._deadline_cv.notify_all()
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for t in self._threads:
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            while True:
                with self._lock:
                    pending = self._busy
                if not pending or (deadline is not None and time.monotonic() >= deadline):
                    break
                time.sleep(0.01)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if wait and self._loop_thread is not None:
                self._loop_thread.join(timeout if timeout is not None else 5)
        self._threads = []

    # -- running -------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            run = self._inbox.get()
            if run is _STOP:
                return
            self._run_sync(run)

    def _run_sync(self, run: _Run) -> None:
        item = run.item
        run.started_at = now()
        try:
            value = item.call()
            result = WorkResult(job_id=item.job.id, ok=True, value=value)
        except BaseException as exc:  # report everything, even SystemExit, as the job's error
            result = WorkResult(job_id=item.job.id, ok=False, exception=exc, error=error_info(exc, item.job.attempts))
        self._end(run, result)

    def _end(self, run: _Run, result: WorkResult) -> None:
        result.started_at = run.started_at
        result.ended_at = now()
        with self._lock:
            run.finished = True
            late = run.timed_out
            self._busy -= 1
            if self._runs.get(run.item.job.id) is run:
                del self._runs[run.item.job.id]
        if late:
            # the deadline already reported this attempt; this is the late ending
            result = WorkResult(job_id=run.item.job.id, ok=result.ok, timed_out=True, still_running=False,
                                started_at=result.started_at, ended_at=result.ended_at)
        self._report(run, result)

    def _report(self, run: _Run, result: WorkResult) -> None:
        try:
            run.done(result)
        except Exception:
            log.exception("job %s: completion callback failed", run.item.job.id)

    # -- async ---------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run_loop() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()
                    loop.close()

                self._loop_thread = threading.Thread(target=run_loop, name="nuvom-asyncio", daemon=True)
                self._loop_thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def _submit_async(self, run: _Run) -> None:
        loop = self._ensure_loop()
        run.started_at = now()
        run.future = asyncio.run_coroutine_threadsafe(run.item.call(), loop)
        run.future.add_done_callback(lambda fut: self._async_done(run, fut))

    def _async_done(self, run: _Run, fut: Future[Any]) -> None:
        job_id = run.item.job.id
        if fut.cancelled():
            timed_out = run.timed_out
            result = WorkResult(job_id=job_id, ok=False, timed_out=timed_out, cancelled=not timed_out)
            with self._lock:
                run.timed_out = False  # a cancelled coroutine has really ended: report once
        else:
            exc = fut.exception()
            if exc is None:
                result = WorkResult(job_id=job_id, ok=True, value=fut.result())
            else:
                result = WorkResult(job_id=job_id, ok=False, exception=exc, error=error_info(exc, run.item.job.attempts))
        self._end(run, result)

    # -- deadlines -----------------------------------------------------------------

    def _add_deadline(self, deadline: float, run: _Run) -> None:
        """Track ``run``'s deadline.  The watcher is woken only when the earliest
        deadline moves earlier (not once per job), and entries of runs that
        already finished are dropped once they outnumber the live ones."""
        with self._deadline_lock:
            heap = self._deadlines
            if len(heap) >= 64 and len(heap) > 2 * self._busy:
                heap[:] = [entry for entry in heap if not entry[2].finished]
                heapq.heapify(heap)
            earliest = heap[0][0] if heap else None
            heapq.heappush(heap, (deadline, next(self._seq), run))
            if earliest is None or deadline < earliest:
                self._deadline_cv.notify()

    def _watch_deadlines(self) -> None:
        while not self._closing:
            with self._deadline_cv:
                while not self._deadlines and not self._closing:
                    self._deadline_cv.wait()
                if self._closing:
                    return
                deadline, _, run = self._deadlines[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._deadline_cv.wait(delay)
                    continue
                heapq.heappop(self._deadlines)
            self._expire(run)

    def _expire(self, run: _Run) -> None:
        with self._lock:
            if run.finished:
                return
            run.timed_out = True
        if run.future is not None:
            run.future.cancel()  # the coroutine is cancelled; _async_done reports it
            return
        self._report(run, WorkResult(job_id=run.item.job.id, ok=False, timed_out=True, still_running=True,
                                     started_at=run.started_at, ended_at=now()))
