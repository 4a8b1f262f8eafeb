"""Running one attempt and deciding what its ending means.

Shared by the worker and ``nuvom runtestworker`` so a job is treated the same
way by both: per-task hooks, ``current_job()``, retries with backoff, and the
timeout policies.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nuvom_kernel.context import JobContext, current_app, reset_current, set_current
from nuvom_kernel.contracts import WorkResult
from nuvom_kernel.errors import PayloadError, Retry
from nuvom_kernel.hookspecs import hookimpl
from nuvom_kernel.models import ErrorInfo, Job, Outcome, now
from nuvom_kernel.tracebacks import user_traceback

if TYPE_CHECKING:
    from nuvom_kernel.manager import NuvomPluginManager
    from nuvom_kernel.task import Task

log = logging.getLogger("nuvom.worker")


def error_info(exc: BaseException, attempt: int, *, timed_out: bool = False) -> ErrorInfo:
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    if module == "builtins":
        name = f"builtins.{cls.__qualname__}"
    return ErrorInfo(
        attempt=attempt,
        type=name,
        message=str(exc),
        traceback=user_traceback(exc),  # starts at the task, not in the worker
        timed_out=timed_out,
    )


def _call_hook(task: Task[Any], hook_name: str, *args: Any) -> None:
    hook: Callable[..., Any] | None = getattr(task, hook_name, None)
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        log.exception("task %s: %s hook %s raised (ignored; the job's outcome is unchanged)",
                      task.name, hook_name, getattr(hook, "__qualname__", hook))


def call_task(task: Task[Any], job: Job) -> Any:
    """The task's own call with its per-task hooks (``before_job``, ``after_job``, ``on_error``)."""
    _call_hook(task, "before_job")
    try:
        value = task.fn(*job.args, **job.kwargs)
    except BaseException as exc:
        if not isinstance(exc, Retry):
            _call_hook(task, "on_error", exc)
        raise
    _call_hook(task, "after_job", value)
    return value


async def call_task_async(task: Task[Any], job: Job) -> Any:
    """The async twin of :func:`call_task`."""
    _call_hook(task, "before_job")
    try:
        value = await task.fn(*job.args, **job.kwargs)
    except BaseException as exc:
        if not isinstance(exc, Retry):
            _call_hook(task, "on_error", exc)
        raise
    _call_hook(task, "after_job", value)
    return value


class KernelExecution:
    """The innermost ``nuvom_execute_job``: the task call itself.  The plugin
    manager registers it; plugins wrap it."""

    @hookimpl(trylast=True)
    def nuvom_execute_job(self, job: Job, task: Task[Any]) -> Any:
        return call_task(task, job)


def run_sync(task: Task[Any], ctx: JobContext, plugins: NuvomPluginManager | None = None) -> Any:
    """Run a sync task's attempt in this thread, with hooks and ``current_job()``.

    ``plugins``: call the ``nuvom_execute_job`` wrappers around the task (only
    when some plugin implements them; otherwise the task is called directly).
    """
    token = set_current(ctx)
    app_token = current_app.set(ctx.app) if ctx.app is not None else None
    try:
        if plugins is not None and plugins.wraps_execution():
            return plugins.execute_job(ctx.job, task)
        return call_task(task, ctx.job)
    finally:
        if app_token is not None:
            current_app.reset(app_token)
        reset_current(token)


async def run_async(task: Task[Any], ctx: JobContext, plugins: NuvomPluginManager | None = None) -> Any:
    """The async twin of :func:`run_sync`; runs on the worker's event loop."""
    token = set_current(ctx)
    app_token = current_app.set(ctx.app) if ctx.app is not None else None
    try:
        if plugins is not None and plugins.wraps_execution():
            return await plugins.execute_job_async(ctx.job, task, lambda: call_task_async(task, ctx.job))
        return await call_task_async(task, ctx.job)
    finally:
        if app_token is not None:
            current_app.reset(app_token)
        reset_current(token)


def retry_delay(job: Job, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before the next attempt: fixed, or exponential with a cap and (by
    default) jitter between half and all of the computed delay."""
    base = max(0.0, job.retry_delay_secs)
    if job.backoff == "exponential":
        delay = min(job.backoff_max_secs, base * (2 ** max(0, attempt - 1)))
        if job.jitter and delay > 0:
            delay = (rng or random).uniform(delay / 2, delay)
        return delay
    return base


def decide(job: Job, task: Task[Any] | None, result: WorkResult, check_result: Callable[[Any], Any] | None = None) -> Outcome:
    """Turn how an attempt ended into the job's next state.

    ``job.attempts`` already counts this attempt.  Rules (docs/execution.md):
    success stores the value; ``raise Retry(delay=)`` and ordinary errors retry
    while attempts remain (only errors in ``retry_on`` if that is set);
    a timeout follows ``timeout_policy``; a crashed child counts as an attempt
    and ends in ``dead`` when none remain.  ``check_result(value)`` returns the
    form in which a result is stored, or raises ``PayloadError`` (the job fails).
    """
    attempt = job.attempts
    remaining = attempt < job.max_attempts
    at = now()

    if result.cancelled or job.cancel_requested:
        # asked to stop while running: the job ends cancelled even if the code
        # finished anyway (its result, if any, is discarded)
        return Outcome(kind="cancelled", error=result.error if not result.ok else None,
                       reason="cancelled while running", at=at)

    if result.timed_out:
        limit = job.timeout_secs
        err = ErrorInfo(
            attempt=attempt, type="nuvom_kernel.errors.JobTimeoutError",
            message=f"attempt {attempt} timed out after {limit} s",
            traceback=result.error.traceback if result.error else "", timed_out=True,
        )
        policy = job.timeout_policy
        if policy == "ignore":
            return Outcome(kind="succeeded", result=None, error=err, at=at,
                           note=f"timed out after {limit} s; recorded as success by timeout_policy=ignore")
        if policy == "retry" and remaining:
            delay = retry_delay(job, attempt)
            return Outcome(kind="retry", error=err, eta=at + delay, at=at, note=f"timed out; retry in {delay:.3g} s")
        return Outcome(kind="failed", error=err, at=at,
                       note="timed out" + ("; no retries left" if policy == "retry" else " (timeout_policy=fail)"))

    if result.crashed:
        err = result.error or ErrorInfo(attempt=attempt, type="nuvom.WorkerCrash", message="the process running the job died")
        if remaining:
            delay = retry_delay(job, attempt)
            return Outcome(kind="retry", error=err, eta=at + delay, at=at, note="process died; retrying")
        return Outcome(kind="dead", error=err, at=at,
                       reason=f"the process running it died on attempt {attempt} of {job.max_attempts}")

    if result.ok:
        value = result.value
        if check_result is not None and job.store_result:
            try:
                value = check_result(value)
            except PayloadError as exc:
                return Outcome(kind="failed", error=error_info(exc, attempt), at=at, note="result could not be stored")
        return Outcome(kind="succeeded", result=value, at=at)

    raised = result.exception
    err = result.error or (error_info(raised, attempt) if raised is not None else
                           ErrorInfo(attempt=attempt, type="nuvom.UnknownError", message="attempt failed"))
    if isinstance(raised, Retry):
        if remaining:
            delay = raised.delay if raised.delay is not None else retry_delay(job, attempt)
            return Outcome(kind="retry", error=err, eta=at + max(0.0, delay), at=at,
                           note=f"Retry raised; retry in {delay:.3g} s")
        return Outcome(kind="failed", error=err, at=at, note="Retry raised but no retries left")
    retry_on = task.retry_on if task is not None else None
    if retry_on is not None and raised is not None and not isinstance(raised, retry_on):
        return Outcome(kind="failed", error=err, at=at, note=f"{type(raised).__name__} is not in retry_on")
    if remaining:
        delay = retry_delay(job, attempt)
        return Outcome(kind="retry", error=err, eta=at + delay, at=at, note=f"retry in {delay:.3g} s")
    return Outcome(kind="failed", error=err, at=at, note=("no retries left" if job.max_retries else None))
