"""Turning what a child sent (or how it died) into a ``WorkResult``."""

from __future__ import annotations

import pickle
import signal
from typing import Any

from nuvom_kernel.contracts import WorkResult
from nuvom_kernel.errors import Retry
from nuvom_kernel.models import ErrorInfo, Job, now

CRASH_TYPE = "nuvom.WorkerCrash"


class ChildTaskError(Exception):
    """Stands for a task's exception that stayed in the child.

    Only set as ``WorkResult.exception`` when the task has ``retry_on`` and
    the child found the exception is *not* one of those types, so the
    worker's decision (``isinstance(exc, retry_on)``) fails the job as it
    would on the thread executor.  The error itself travels as ErrorInfo.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


def from_payload(job: Job, payload: dict[str, Any]) -> WorkResult:
    """The ``("result", ...)`` message of a child, as the worker expects it."""
    started_at = float(payload.get("started_at") or 0.0)
    ended_at = float(payload.get("ended_at") or now())
    if payload.get("ok"):
        try:
            value = pickle.loads(payload["value"])
        except Exception as exc:
            error = ErrorInfo(
                attempt=job.attempts, type="nuvom_kernel.errors.PayloadError",
                message=(f"the result of task {job.task!r} could not be decoded in the worker "
                         f"({type(exc).__name__}: {exc}); return plain data (numbers, strings, lists, dicts)"),
            )
            return WorkResult(job_id=job.id, ok=False, error=error, started_at=started_at, ended_at=ended_at)
        return WorkResult(job_id=job.id, ok=True, value=value, started_at=started_at, ended_at=ended_at)
    fields = payload.get("error") or {}
    error = ErrorInfo(attempt=job.attempts, type=str(fields.get("type", "nuvom.UnknownError")),
                      message=str(fields.get("message", "")), traceback=str(fields.get("traceback", "")))
    exception: BaseException | None = None
    retry = payload.get("retry")
    if retry is not None:
        delay, reason = retry
        exception = Retry(delay=delay, reason=reason)
    elif payload.get("retry_on_match") is False:
        exception = ChildTaskError(error.type, error.message)
    return WorkResult(job_id=job.id, ok=False, error=error, exception=exception,
                      started_at=started_at, ended_at=ended_at)


def describe_exit(exitcode: int | None) -> str:
    """``exited with code 3`` / ``was killed by signal SIGKILL (9)``."""
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by signal {name} ({-exitcode})"
    return f"exited with code {exitcode}"


def crashed(job: Job, pid: int | None, exitcode: int | None, *, before_ready: bool = False,
            started_at: float = 0.0) -> WorkResult:
    how = describe_exit(exitcode)
    if before_ready:
        message = (f"the process executor's child (pid {pid}) {how} before it was ready to run jobs; "
                   "its standard error says why (an import or start-up failure)")
    else:
        message = f"the process executor's child (pid {pid}) running this job {how}"
    error = ErrorInfo(attempt=job.attempts, type=CRASH_TYPE, message=message)
    return WorkResult(job_id=job.id, ok=False, crashed=True, error=error, started_at=started_at, ended_at=now(),
                      extra={"exitcode": exitcode, "pid": pid})


def timed_out(job: Job, pid: int | None, exitcode: int | None, *, started: bool, started_at: float,
              start_timeout: float) -> WorkResult:
    if started:
        detail = (f"the process executor terminated its child (pid {pid}) at the deadline of "
                  f"{job.timeout_secs} s; the child {describe_exit(exitcode)}")
    else:
        detail = (f"the process executor's child (pid {pid}) did not start the job within "
                  f"{job.timeout_secs} s + start_timeout_secs={start_timeout} s (it was starting up or "
                  f"importing the task's module) and was terminated; it {describe_exit(exitcode)}")
    error = ErrorInfo(attempt=job.attempts, type="nuvom_kernel.errors.JobTimeoutError",
                      message=detail, traceback=detail, timed_out=True)
    return WorkResult(job_id=job.id, ok=False, timed_out=True, still_running=False, error=error,
                      started_at=started_at, ended_at=now(), extra={"exitcode": exitcode, "pid": pid})


def cancelled(job: Job, pid: int | None, exitcode: int | None, started_at: float) -> WorkResult:
    message = f"cancelled while running: the process executor terminated its child (pid {pid})"
    error = ErrorInfo(attempt=job.attempts, type="nuvom.Cancelled", message=message)
    return WorkResult(job_id=job.id, ok=False, cancelled=True, error=error, started_at=started_at,
                      ended_at=now(), extra={"exitcode": exitcode, "pid": pid})


def not_started(job: Job, reason: str, *, cancelled_: bool) -> WorkResult:
    """A submitted job that never reached a child (cancelled or shut down while waiting)."""
    error = ErrorInfo(attempt=job.attempts, type="nuvom.Cancelled" if cancelled_ else CRASH_TYPE, message=reason)
    return WorkResult(job_id=job.id, ok=False, cancelled=cancelled_, crashed=not cancelled_, error=error,
                      ended_at=now())
