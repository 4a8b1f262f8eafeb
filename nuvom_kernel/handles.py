"""``JobHandle``: what ``task.delay()`` returns, to follow a job and get its
result; and rebuilding a failed job's exception for the caller."""

from __future__ import annotations

import builtins
import sys
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from nuvom_kernel.contracts import poll_result
from nuvom_kernel.errors import JobCancelledError, JobDeadError, JobFailedError
from nuvom_kernel.models import Job, JobState

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom

R = TypeVar("R")

__all__ = ["JobHandle", "rebuild_error"]


class JobHandle(Generic[R]):
    """What ``delay()`` returns: the job's id and ways to wait for its result."""

    def __init__(self, job_id: str, app: Nuvom | None = None) -> None:
        self.id = job_id
        self._app = app

    def __repr__(self) -> str:
        return f"<JobHandle {self.id}>"

    @property
    def app(self) -> Nuvom:
        if self._app is None:
            from nuvom_kernel.app import get_app

            self._app = get_app()
        return self._app

    def job(self) -> Job:
        return self.app.get_job(self.id)

    def status(self) -> JobState:
        return self.job().state

    def cancel(self) -> Job:
        return self.app.cancel_job(self.id)

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job reaches a terminal state; ``TimeoutError`` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.job()  # JobNotFoundError for an unknown id
        while not job.is_terminal():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"job {self.id} is still {job.state} after {timeout} s")
            # the result store's blocking wait, in slices: in between, the job's
            # state is read again (an operator may cancel it in the queue)
            step = 1.0 if left is None else min(1.0, left)
            wait = getattr(self.app.results, "wait", None)  # result stores written before wait() existed
            done = wait(self.id, step) if wait is not None else poll_result(self.app.results.get_result, self.id, step)
            job = done if done is not None else self.job()
        return job

    def result(self, timeout: float | None = None) -> R:
        """The task's return value; raises the task's error if it failed."""
        job = self.wait(timeout)
        if job.state == JobState.SUCCEEDED:
            return self.app.decode_value(job.result)  # type: ignore[no-any-return]
        if job.state == JobState.CANCELLED:
            raise JobCancelledError(f"job {self.id} was cancelled: {job.reason}")
        if job.state == JobState.DEAD:
            raise JobDeadError(f"job {self.id} is dead: {job.reason}")
        raise rebuild_error(job)


def rebuild_error(job: Job) -> BaseException:
    """The task's exception, rebuilt when its class is a builtin or already imported."""
    err = job.last_error
    if err is None:
        return JobFailedError("UnknownError", "job failed without an error record", job_id=job.id)
    remote = JobFailedError(err.type, err.message, err.traceback, job_id=job.id)
    module, _, qualname = err.type.rpartition(".")
    cls: Any = None
    if module in ("builtins", ""):
        cls = getattr(builtins, qualname, None)
    elif module in sys.modules:  # never import to rebuild an error
        cls = sys.modules[module]
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(err.message)
        except Exception:
            return remote
        exc.__cause__ = remote
        return exc
    return remote
