"""``current_job()``: what a running task can ask about itself."""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nuvom_kernel.models import Job

if TYPE_CHECKING:
    from nuvom_kernel.contracts import JobStore


#: The app ``get_app()`` returns in this thread or task (``use_app``); unset means the default app.
current_app: contextvars.ContextVar[Any] = contextvars.ContextVar("nuvom_current_app", default=None)


@dataclass
class JobContext:
    """The attempt being run.  Thread-safe; one per attempt."""

    job: Job
    deadline: float | None = None  # time.monotonic() value
    #: the job store holding the job (progress is written there, fenced by the token)
    queue: JobStore | None = None
    #: the worker's app: current (``get_app()``) while the task runs, so a task's own ``.delay()`` uses it
    app: Any = None
    _cancel: threading.Event | None = field(default=None, repr=False)

    @property
    def cancel_event(self) -> threading.Event:
        """Set when the attempt should stop (cancellation or timeout); created on first use."""
        if self._cancel is None:
            with _event_lock:
                if self._cancel is None:
                    self._cancel = threading.Event()
        return self._cancel

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempts

    def time_remaining(self) -> float | None:
        """Seconds until the attempt's timeout (never negative), or ``None`` without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def is_cancelled(self) -> bool:
        """True once a cancellation or a timeout asked this attempt to stop;
        long-running thread tasks should check it and return early."""
        return self._cancel is not None and self._cancel.is_set()

    def set_progress(self, progress: Any) -> bool:
        """Record progress (any JSON value, e.g. ``{"done": 3, "total": 10}``).

        Visible through ``get_job(id).progress`` and ``nuvom inspect job``.
        Returns False when the job's lease was lost (the update is refused).
        """
        self.job.progress = progress
        if self.queue is None or self.job.token is None:
            return True
        return self.queue.set_progress(self.job.id, self.job.token, progress)


_event_lock = threading.Lock()
_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("nuvom_current_job", default=None)


def current_job() -> JobContext:
    """The job this code runs for; ``RuntimeError`` outside a task run by a worker."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_job() is only available inside a task run by a Nuvom worker")
    return ctx


def set_current(ctx: JobContext | None) -> contextvars.Token[JobContext | None]:
    return _current.set(ctx)


def reset_current(token: contextvars.Token[JobContext | None]) -> None:
    _current.reset(token)
