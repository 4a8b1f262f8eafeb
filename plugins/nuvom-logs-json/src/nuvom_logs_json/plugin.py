"""The hooks: a JSON handler for the ``nuvom`` command, and a record per job event.

Job events are records of the ``nuvom.events`` logger with ``extra=`` fields.
They are logged only where a :class:`JsonFormatter` will write them (the
handler this plugin gives the ``nuvom`` command, or one a host application
attached itself), so installing the plugin never adds lines to text logs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nuvom_kernel import hookimpl
from nuvom_kernel.models import ErrorInfo, Job, JobState
from nuvom_logs_json.formatter import JsonFormatter
from nuvom_logs_json.options import SECTION, JsonLogsOptions, make_handler

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.hookspecs import RegisterSettings

events = logging.getLogger("nuvom.events")

_ENDINGS = {
    JobState.SUCCEEDED: ("job.succeeded", logging.INFO),
    JobState.FAILED: ("job.failed", logging.ERROR),
    JobState.CANCELLED: ("job.cancelled", logging.INFO),
    JobState.DEAD: ("job.dead", logging.ERROR),
    JobState.QUEUED: ("job.retrying", logging.WARNING),
    JobState.SCHEDULED: ("job.retrying", logging.WARNING),
}


@hookimpl
def nuvom_register_settings(register: RegisterSettings) -> None:
    register(SECTION, JsonLogsOptions)


@hookimpl
def nuvom_log_handler(app: Nuvom) -> logging.Handler | None:
    resolved = app.plugin_settings.get(SECTION)
    if resolved is None or not isinstance(resolved.values, JsonLogsOptions) or not resolved.values.enabled:
        return None
    return make_handler(resolved.values, app.root)


def writes_json(logger: logging.Logger, level: int) -> bool:
    """Whether a record of ``logger`` at ``level`` reaches a handler with a JsonFormatter."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if isinstance(handler.formatter, JsonFormatter) and level >= handler.level:
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _job_fields(job: Job) -> dict[str, Any]:
    fields: dict[str, Any] = {"job_id": job.id, "task": job.task, "queue": job.queue,
                              "attempt": job.attempts, "state": job.state.value}
    if job.worker_id:
        fields["worker_id"] = job.worker_id
    return fields


def _error_fields(error: ErrorInfo | None) -> dict[str, Any]:
    if error is None:
        return {}
    fields: dict[str, Any] = {"error_type": error.type, "error_message": error.message}
    if error.traceback:
        fields["traceback"] = error.traceback
    if error.timed_out:
        fields["timed_out"] = True
    return fields


def _duration(job: Job, until: float | None) -> dict[str, Any]:
    if job.started_at is None or until is None:
        return {}
    return {"duration": round(max(0.0, until - job.started_at), 6)}


def _emit(level: int, event: str, message: str, **fields: Any) -> None:
    if writes_json(events, level):
        events.log(level, message, extra={"event": event, **fields})


@hookimpl
def nuvom_job_enqueued(job: Job) -> None:
    if not writes_json(events, logging.INFO):
        return
    _emit(logging.INFO, "job.enqueued", f"job {job.id} ({job.task}) enqueued on {job.queue}", **_job_fields(job))


@hookimpl
def nuvom_job_started(job: Job) -> None:
    if not writes_json(events, logging.INFO):  # called for every job: say nothing cheaply
        return
    _emit(logging.INFO, "job.started", f"job {job.id} ({job.task}) started, attempt {job.attempts}",
          **_job_fields(job))


@hookimpl
def nuvom_job_finished(job: Job, record: Job) -> None:
    # one hook for every ending: unlike nuvom_job_retrying/nuvom_job_dead it also
    # has the job as claimed, which knows the worker (the record no longer does)
    event, level = _ENDINGS.get(record.state, ("job.finished", logging.INFO))
    if not writes_json(events, level):  # called for every job: say nothing cheaply
        return
    error = record.last_error if record.errors and record.errors[-1].attempt == record.attempts else None
    fields = {**_job_fields(record), **_error_fields(error)}
    if job.worker_id:
        fields["worker_id"] = job.worker_id
    if event == "job.retrying":
        until = record.updated_at
        delay = max(0.0, (record.eta or until) - until)
        fields.update(_duration(job, error.at if error is not None else until), delay=round(delay, 6))
        message = f"job {record.id} ({record.task}) will retry in {delay:.3g} s"
    else:
        fields.update(_duration(job, record.finished_at))
        message = f"job {record.id} ({record.task}) {record.state.value}"
        if record.reason and record.state != JobState.SUCCEEDED:
            fields["reason"] = record.reason
            message += f": {record.reason}"
    _emit(level, event, message, **fields)
