"""The executor's bookkeeping: attempts, slots, deadlines, recycling, the wake-up pipe."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

from nuvom_executor_process.children import Child
from nuvom_executor_process.options import ProcessOptions
from nuvom_kernel.contracts import WorkItem, WorkResult


@dataclass(eq=False)
class Run:
    """One submitted attempt, from ``submit`` to its one report."""

    item: WorkItem
    done: Callable[[WorkResult], None]
    sent_mono: float | None = None  # handed to a child (time.monotonic)
    started_mono: float | None = None  # the child said the task is starting
    started_at: float = 0.0  # wall clock, from the child
    reported: bool = False


@dataclass(eq=False)
class Slot:
    """A place for one child running at most one attempt."""

    index: int
    child: Child | None = None
    run: Run | None = None
    failures: int = 0  # consecutive children that died before they were ready
    respawn_at: float | None = None


def deadline(run: Run, options: ProcessOptions) -> float | None:
    """When the attempt must be stopped (time.monotonic), or None without a timeout.

    The clock starts when the child starts the task; until then the child may
    take ``start_timeout_secs`` more to start up and import the task's module.
    """
    timeout = run.item.timeout_secs
    if not timeout:
        return None
    if run.started_mono is not None:
        return run.started_mono + timeout
    if run.sent_mono is not None:
        return run.sent_mono + timeout + options.start_timeout_secs
    return None


def encode_run(item: WorkItem, path: Sequence[str] | None) -> bytes:
    """The ``("run", request)`` message for a child; ``path`` when its sys.path is out of date."""
    request = {"job": item.job, "modules": list(item.modules), "timeout": item.timeout_secs,
               "path": list(path) if path is not None else None, "plugins": list(item.plugins)}
    return pickle.dumps(("run", request), protocol=pickle.HIGHEST_PROTOCOL)


def backoff(failures: int) -> float:
    """Delay before starting a child again after ``failures`` start-up failures in a row."""
    return 0.0 if failures <= 1 else min(30.0, 0.5 * 2 ** (failures - 2))


def recycle_reason(options: ProcessOptions, tasks_done: int, rss_mb: float | None) -> str | None:
    """Why a child should be replaced after its latest job, or None."""
    limit_tasks = options.max_tasks_per_child
    if limit_tasks and tasks_done >= limit_tasks:
        return f"it ran max_tasks_per_child={limit_tasks} jobs"
    limit_mb = options.max_memory_per_child
    if limit_mb and rss_mb is not None and rss_mb > limit_mb:
        return f"its peak memory {rss_mb:.0f} MB is over max_memory_per_child={limit_mb:g} MB"
    return None


class Wakeup:
    """A pipe the supervisor waits on beside the children, so other threads can wake it."""

    def __init__(self, reader: Connection, writer: Connection) -> None:
        self.reader = reader
        self.writer = writer
        self._lock = threading.Lock()
        self._pending = False

    def set(self) -> None:
        with self._lock:
            if self._pending or self.writer.closed:
                return
            self._pending = True
            try:
                self.writer.send_bytes(b"w")
            except OSError:
                pass

    def clear(self) -> None:
        with self._lock:
            while self.reader.poll():
                self.reader.recv_bytes()
            self._pending = False

    def close(self) -> None:
        with self._lock:
            self.reader.close()
            self.writer.close()
