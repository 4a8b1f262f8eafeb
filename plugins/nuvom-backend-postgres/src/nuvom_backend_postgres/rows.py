"""Between :class:`Job` objects and rows of the ``jobs`` and ``jobs_done`` tables.

A row holds a job in two parts, as the SQLite backend does:

* the **cold** part, ``data``: the job as JSON text without the fields
  below, written once at enqueue (task, args, kwargs, options);
* the **hot** columns every transition changes (state, token, lease,
  attempts, times, result, reason ...), and ``history`` and ``errors`` as
  ``jsonb`` arrays that transitions only append to (``||``).

:func:`decode` splices the hot columns into the cold JSON text and lets
pydantic validate the whole in one pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from nuvom_kernel.errors import CorruptJobError
from nuvom_kernel.models import ErrorInfo, Job, JobState, Transition, now

#: Fields kept in hot columns, never in ``data``.
HOT_FIELDS = frozenset({
    "state", "attempts", "eta", "updated_at", "started_at", "finished_at", "token", "lease_expires_at",
    "worker_id", "result", "progress", "reason", "cancel_requested", "lease_expiries", "history", "errors",
})
#: What readers select (prefix each with a table alias where needed): :func:`decode` takes a row of these.
JOB_COLUMNS = (
    "id, task, data, state, attempts, eta, updated_at, started_at, finished_at, token, lease_expires_at, "
    "worker_id, result, progress, reason, cancel_requested, lease_expiries, history::text, errors::text"
)


def columns(alias: str) -> str:
    """:data:`JOB_COLUMNS` qualified with a table alias (``j.id, j.task, ...``)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in JOB_COLUMNS.split(","))


#: Every stored column, in the order :func:`insert_values` produces them.
INSERT_COLUMNS = (
    "id", "queue", "state", "priority", "ready_at", "created_at", "finished_at", "unique_key", "token",
    "lease_expires_at", "task", "data", "attempts", "eta", "updated_at", "started_at", "worker_id", "result",
    "progress", "reason", "cancel_requested", "lease_expiries", "max_lease_expiries", "store_result",
    "history", "errors",
)
#: The PostgreSQL type of each of :data:`INSERT_COLUMNS` (for ``unnest`` of arrays).
INSERT_TYPES = (
    "text", "text", "text", "int4", "float8", "float8", "float8", "text", "int8",
    "float8", "text", "text", "int4", "float8", "float8", "float8", "text", "text",
    "text", "text", "bool", "int4", "int4", "bool",
    "jsonb", "jsonb",
)

_HISTORY = TypeAdapter(list[Transition])
_ERRORS = TypeAdapter(list[ErrorInfo])
_dumps = json.dumps


def ready_at(job: Job) -> float:
    return job.eta if job.eta is not None else job.created_at


def cold_json(job: Job) -> str:
    return job.model_dump_json(exclude=HOT_FIELDS)  # type: ignore[arg-type]


def json_or_none(value: Any) -> str | None:
    """A JSON value as column text; ``None`` is SQL NULL."""
    return None if value is None else to_json(value).decode()


def history_json(entries: list[Transition]) -> str:
    return _HISTORY.dump_json(entries).decode()


def errors_json(entries: list[ErrorInfo]) -> str:
    return _ERRORS.dump_json(entries).decode()


def insert_values(job: Job) -> tuple[Any, ...]:
    """The complete job, as :data:`INSERT_COLUMNS`."""
    return (
        job.id, job.queue, job.state.value, job.priority, ready_at(job), job.created_at, job.finished_at,
        job.unique_key, job.token, job.lease_expires_at, job.task, cold_json(job), job.attempts, job.eta,
        job.updated_at, job.started_at, job.worker_id, json_or_none(job.result), json_or_none(job.progress),
        job.reason, job.cancel_requested, job.lease_expiries, job.max_lease_expiries, job.store_result,
        history_json(job.history), errors_json(job.errors),
    )


def transpose(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows -> one list per column (parameters of an ``unnest`` insert)."""
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in INSERT_COLUMNS]


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if not isinstance(value, str):
        raise ValueError("a JSON column holds a non-text value")
    return value


def decode(row: Sequence[Any]) -> Job:
    """The job stored in a row of :data:`JOB_COLUMNS`.  Raises
    :class:`CorruptJobError` for a row that does not describe a valid job
    with the row's id (a damaged or hand-edited row)."""
    (job_id, _task, data, state, attempts, eta, updated_at, started_at, finished_at, token, lease,
     worker_id, result, progress, reason, cancel_requested, lease_expiries, history, errors) = row
    try:
        if not isinstance(data, str) or not data.endswith("}"):
            raise ValueError("the JSON is not an object")
        hot = {
            "state": state, "attempts": attempts, "eta": eta, "started_at": started_at, "finished_at": finished_at,
            "token": token, "lease_expires_at": lease, "worker_id": worker_id, "reason": reason,
            "cancel_requested": bool(cancel_requested), "lease_expiries": lease_expiries,
        }
        if updated_at is not None:
            hot["updated_at"] = updated_at
        text = (f'{data[:-1]},{_dumps(hot)[1:-1]},"result":{_json_text(result)},"progress":{_json_text(progress)},'
                f'"history":{_json_text(history)},"errors":{_json_text(errors)}}}')
        job = Job.model_validate_json(text)
    except (ValidationError, ValueError, TypeError, RecursionError) as exc:
        raise CorruptJobError(f"job {job_id!r}: stored job cannot be decoded ({exc.__class__.__name__})") from exc
    if job.id != job_id:
        raise CorruptJobError(f"job {job_id!r}: stored JSON describes another job ({job.id!r})")
    return job


def placeholder(job_id: str, task: str, reason: str) -> Job:
    """What readers see for a row that cannot be decoded: a dead job saying why."""
    at = now()
    job = Job(id="x", task=task if isinstance(task, str) and task else "?", state=JobState.DEAD, reason=reason,
              created_at=at, finished_at=at)
    job.id = job_id
    return job


def read_job(row: Sequence[Any]) -> Job:
    try:
        return decode(row)
    except CorruptJobError as exc:
        return placeholder(row[0], row[1], f"corrupt stored job: {exc}")
