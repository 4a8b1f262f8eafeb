"""An executor running attempts on a thread pool, with soft timeouts.

Python cannot stop a thread, so at an attempt's deadline the executor reports
it as timed out with ``still_running=True``; the slot stays busy, and when the
code finally returns the attempt is reported a second time with
``still_running=False`` (the worker discards that late value).  ``async def``
tasks run to completion on an event loop of their own in the pool thread.
It passes the kernel's ExecutorContract.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nuvom_kernel.contracts import WorkItem, WorkResult
from nuvom_kernel.execution import error_info
from nuvom_kernel.models import now


class _Attempt:
    """One submitted item; reports its ending exactly once (twice after a timeout)."""

    def __init__(self, item: WorkItem, done: Callable[[WorkResult], None]) -> None:
        self.item = item
        self.done = done
        self.lock = threading.Lock()
        self.finished = False
        self.timed_out = False
        self.started_at = now()

    def expire(self) -> None:
        with self.lock:
            if self.finished:
                return
            self.timed_out = True
        self.done(WorkResult(job_id=self.item.job.id, ok=False, timed_out=True, still_running=True,
                             started_at=self.started_at, ended_at=now()))

    def finish(self, result: WorkResult) -> None:
        with self.lock:
            self.finished = True
            late = self.timed_out
        result.started_at, result.ended_at = self.started_at, now()
        if late:
            result = WorkResult(job_id=result.job_id, ok=result.ok, timed_out=True, still_running=False,
                                started_at=result.started_at, ended_at=result.ended_at)
        self.done(result)


class SimpleThreadExecutor:
    """Implements Executor (nuvom_kernel.contracts)."""

    def __init__(self, name: str = "simple-thread") -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._size = 0
        self._busy = 0

    def start(self, concurrency: int) -> None:
        if self._pool is None:
            self._size = max(1, int(concurrency))
            self._pool = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix=f"nuvom-{self.name}")

    def free_slots(self) -> int:
        with self._lock:
            return max(0, self._size - self._busy)

    def submit(self, item: WorkItem, done: Callable[[WorkResult], None]) -> None:
        if self._pool is None:
            raise RuntimeError(f"executor {self.name!r}: submit() called before start()")
        attempt = _Attempt(item, done)
        with self._lock:
            self._busy += 1
        if item.timeout_secs:
            timer = threading.Timer(item.timeout_secs, attempt.expire)
            timer.daemon = True
            timer.start()
        self._pool.submit(self._run, attempt)

    def _run(self, attempt: _Attempt) -> None:
        item = attempt.item
        try:
            value: Any = item.call()
            if item.is_async:
                value = asyncio.run(value)
            result = WorkResult(job_id=item.job.id, ok=True, value=value)
        except BaseException as exc:  # the task's error, whatever it is, belongs to the job
            result = WorkResult(job_id=item.job.id, ok=False, exception=exc, error=error_info(exc, item.job.attempts))
        with self._lock:
            self._busy -= 1
        attempt.finish(result)

    def cancel(self, job_id: str) -> bool:
        """Threads cannot be interrupted: a task checks ``current_job().is_cancelled()``."""
        return False

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if not wait:
            pool.shutdown(wait=False)
            return
        finished = threading.Event()

        def drain() -> None:  # ThreadPoolExecutor.shutdown has no timeout of its own
            pool.shutdown(wait=True)
            finished.set()

        threading.Thread(target=drain, name=f"nuvom-{self.name}-shutdown", daemon=True).start()
        finished.wait(timeout)
