"""Between :class:`Job` objects and rows of the ``jobs`` table.

A row holds a job in two parts (schema version 3):

* the **cold** part, ``data``: the job as JSON without the fields below,
  written once at enqueue (what to run and how: task, args, kwargs, options);
* the **hot** columns: every field a transition changes (state, token,
  lease, attempts, times, result, reason ...), and ``history`` and
  ``errors`` as JSON arrays that transitions only append to.

:func:`decode` merges the hot columns over the cold JSON, so readers get the
complete job; a transition writes only hot columns (:data:`HOT_UPDATE_SQL`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from nuvom_kernel.errors import CorruptJobError
from nuvom_kernel.models import ErrorInfo, Job, JobState, Outcome, Transition, now

#: Fields kept in hot columns, never in ``data``.
HOT_FIELDS = frozenset({
    "state", "attempts", "eta", "updated_at", "started_at", "finished_at", "token", "lease_expires_at",
    "worker_id", "result", "progress", "reason", "cancel_requested", "lease_expiries", "history", "errors",
})
#: What a reader selects: :func:`decode` takes a row of these.
JOB_COLUMNS = (
    "id, task, data, state, attempts, eta, updated_at, started_at, finished_at, token, lease_expires_at, "
    "worker_id, result, progress, reason, cancel_requested, lease_expiries, history, errors"
)
#: What a transition selects: :data:`JOB_COLUMNS` without what it never
#: reads (the appended arrays and the progress), for ``decode(..., hot_only=True)``.
HOT_JOB_COLUMNS = JOB_COLUMNS.replace("progress", "NULL").replace("history", "NULL").replace("errors", "NULL")
_INSERT_COLUMNS = (
    "id, state, queue, priority, ready_at, created_at, finished_at, unique_key, token, lease_expires_at, "
    "task, data, attempts, eta, updated_at, started_at, worker_id, result, progress, reason, "
    "cancel_requested, lease_expiries, history, errors"
)
_INSERT_MARKS = ",".join("?" * len(_INSERT_COLUMNS.split(",")))
#: Every column, in the order :func:`insert_values` produces them.
INSERT_SQL = f"INSERT INTO jobs ({_INSERT_COLUMNS}) VALUES ({_INSERT_MARKS}) ON CONFLICT DO NOTHING"
#: Insert, or replace every column of the stored row (the result role's ``save``).
UPSERT_SQL = f"INSERT INTO jobs ({_INSERT_COLUMNS}) VALUES ({_INSERT_MARKS}) ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c.strip()}=excluded.{c.strip()}" for c in _INSERT_COLUMNS.split(",") if c.strip() != "id"
)
#: Rewrite every changeable column from a complete job (operator actions,
#: which are rare and may change options such as ``max_retries``).
#: ``priority``, ``unique_key``, ``queue``, ``created_at`` and ``task`` never
#: change after enqueue; leaving them out spares the indexes on them.
UPDATE_SQL = (
    "UPDATE jobs SET state=?, ready_at=?, finished_at=?, token=?, lease_expires_at=?, data=?, attempts=?, "
    "eta=?, updated_at=?, started_at=?, worker_id=?, result=?, progress=?, reason=?, cancel_requested=?, "
    "lease_expiries=?, history=?, errors=? WHERE id=?"
)


def _append(column: str, param: int) -> str:
    """SQL appending the JSON array text in parameter ``param`` (or nothing,
    when it is NULL) to the JSON array in ``column``: text splicing, no JSON
    parsing, so an append costs the same however long the array is."""
    return f"{column} = {append_sql(column, f'?{param}', f'?{param} IS NULL')}"


def append_sql(column: str, entries: str, skip: str = "0") -> str:
    """An SQL expression: the JSON array text ``column`` with the array text
    ``entries`` appended.  A damaged value that is not text (a blob) is left
    as it is, so that reading the row reports it (splicing it would make text
    that is not UTF-8, which no reader could even fetch)."""
    return (f"CASE WHEN {skip} OR typeof({column}) <> 'text' THEN {column} WHEN {column} = '[]' THEN {entries} "
            f"ELSE substr({column}, 1, length({column}) - 1) || ',' || substr({entries}, 2) END")


#: What a hot-path transition (claim, start, finish, release, sweep) writes:
#: the hot scalars, and new history and error entries appended.
HOT_UPDATE_SQL = (
    "UPDATE jobs SET state=?1, ready_at=?2, eta=?3, attempts=?4, updated_at=?5, started_at=?6, "
    "finished_at=?7, token=?8, lease_expires_at=?9, worker_id=?10, result=?11, reason=?12, "
    f"cancel_requested=?13, lease_expiries=?14, {_append('history', 15)}, {_append('errors', 16)} WHERE id=?17"
)
#: A terminal outcome (succeeded, failed, dead, cancelled) written from the
#: outcome alone, without reading the job (:func:`finish_values`): the columns
#: ``apply_outcome`` and ``finish_update`` change for it.
FINISH_SQL = (
    "UPDATE jobs SET state=?1, updated_at=?2, finished_at=?2, token=NULL, lease_expires_at=NULL, worker_id=NULL, "
    "result=CASE WHEN ?3 THEN ?4 ELSE result END, reason=CASE WHEN ?5 THEN ?6 ELSE reason END, "
    f"cancel_requested=0, {_append('history', 7)}, {_append('errors', 8)} WHERE id=?9"
)
#: SQLite before 3.32 allows 999 parameters per statement.
CHUNK = 500

_HISTORY = TypeAdapter(list[Transition])
_ERRORS = TypeAdapter(list[ErrorInfo])


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
    return (
        job.id, job.state.value, job.queue, job.priority, ready_at(job), job.created_at,
        job.finished_at, job.unique_key, job.token, job.lease_expires_at, job.task, cold_json(job),
        job.attempts, job.eta, job.updated_at, job.started_at, job.worker_id, json_or_none(job.result),
        json_or_none(job.progress), job.reason, int(job.cancel_requested), job.lease_expiries,
        history_json(job.history), errors_json(job.errors),
    )


def update_values(job: Job) -> tuple[Any, ...]:
    """Parameters of :data:`UPDATE_SQL`: the complete job."""
    return (
        job.state.value, ready_at(job), job.finished_at, job.token, job.lease_expires_at, cold_json(job),
        job.attempts, job.eta, job.updated_at, job.started_at, job.worker_id, json_or_none(job.result),
        json_or_none(job.progress), job.reason, int(job.cancel_requested), job.lease_expiries,
        history_json(job.history), errors_json(job.errors), job.id,
    )


def hot_update_values(job: Job, history_from: int = 0, errors_from: int = 0) -> tuple[Any, ...]:
    """Parameters of :data:`HOT_UPDATE_SQL`: the hot fields of ``job`` and the
    entries of its ``history`` and ``errors`` from the given positions on
    (what the transition appended; 0 for a job read with ``hot_only``)."""
    history, errors = job.history[history_from:], job.errors[errors_from:]
    return (
        job.state.value, ready_at(job), job.eta, job.attempts, job.updated_at, job.started_at,
        job.finished_at, job.token, job.lease_expires_at, job.worker_id, json_or_none(job.result),
        job.reason, int(job.cancel_requested), job.lease_expiries,
        history_json(history) if history else None, errors_json(errors) if errors else None,
        job.id,
    )


_TERMINAL = {"succeeded": JobState.SUCCEEDED, "failed": JobState.FAILED, "dead": JobState.DEAD,
             "cancelled": JobState.CANCELLED}


def finish_values(job_id: str, outcome: Outcome, at: float, store_result: bool) -> tuple[Any, ...]:
    """Parameters of :data:`FINISH_SQL`: what :func:`~nuvom_kernel.models.apply_outcome`
    does to a job for a terminal ``outcome`` at ``at`` (the history and error
    entries are made by the models, as everywhere)."""
    kind = outcome.kind
    state = _TERMINAL[kind]
    note, reason = outcome.note, None
    if kind == "dead":
        note = reason = outcome.reason
    elif kind == "cancelled":
        note = reason = outcome.reason or "cancelled"
    succeeded = kind == "succeeded"
    return (
        state.value, at, succeeded, json_or_none(outcome.result) if succeeded and store_result else None,
        reason is not None or kind == "dead", reason, history_json([Transition(state=state, at=at, note=note)]),
        errors_json([outcome.error]) if outcome.error is not None else None, job_id,
    )


def stores_result(data: str) -> bool:
    """The ``store_result`` of a job's cold JSON (``ValueError`` if it is not an object)."""
    found = json.loads(data)
    if not isinstance(found, dict):
        raise ValueError("the JSON is not an object")
    return found.get("store_result", True) is not False


def _json_text(value: Any) -> str:
    """A column holding JSON text; anything else makes the row undecodable."""
    if value is None:
        return "null"
    if not isinstance(value, str):
        raise ValueError("a JSON column holds a non-text value")
    return value


_dumps = json.dumps


def decode(row: Sequence[Any], *, hot_only: bool = False) -> Job:
    """The job stored in a row of :data:`JOB_COLUMNS`: the hot columns over
    the cold JSON.  ``hot_only`` leaves ``history``, ``errors`` and
    ``progress`` empty: what a transition needs, which then appends to them.
    Raises :class:`CorruptJobError` for a row that does not describe a valid
    job with the row's id.

    The hot columns are appended to the cold JSON object as text and the
    whole is validated in one pass by pydantic's JSON parser (a later key wins,
    so hot columns override any stale copy in the JSON of an old row)."""
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
        # json.dumps writes floats with repr: the exact value comes back
        text = f'{data[:-1]},{_dumps(hot)[1:-1]},"result":{_json_text(result)}'
        if not hot_only:
            text += f',"history":{_json_text(history)},"errors":{_json_text(errors)},"progress":{_json_text(progress)}'
        job = Job.model_validate_json(text + "}")
    except (ValidationError, ValueError, TypeError, RecursionError) as exc:
        raise CorruptJobError(f"job {job_id!r}: stored job cannot be decoded ({exc.__class__.__name__})") from exc
    if job.id != job_id:
        # a damaged or copied row: trusting the JSON would claim or update another job's row
        raise CorruptJobError(f"job {job_id!r}: stored JSON describes another job ({job.id!r})")
    return job


def placeholder(job_id: str, task: str, reason: str) -> Job:
    """What readers see for a row that cannot be decoded: a dead job saying why."""
    at = now()
    job = Job(id="x", task=task if isinstance(task, str) and task else "?", state=JobState.DEAD, reason=reason,
              created_at=at, finished_at=at)
    job.id = job_id  # the stored id may be anything; do not validate it here
    return job


def quarantine(conn: sqlite3.Connection, row: Sequence[Any], reason: str) -> None:
    """Move an undecodable row (of :data:`JOB_COLUMNS`) aside and leave a dead
    placeholder in its place."""
    job_id, task, data = row[0], row[1], row[2]
    at = now()
    conn.execute("INSERT INTO quarantine (id, at, reason, data) VALUES (?,?,?,?)", (job_id, at, reason, data))
    job = placeholder(job_id, task, f"corrupt stored job, quarantined: {reason}")
    conn.execute(UPDATE_SQL, update_values(job))
    conn.execute("UPDATE jobs SET unique_key = NULL WHERE id = ?", (job_id,))


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def marks(count: int) -> str:
    return ",".join("?" * count)


def states_filter(states: Iterable[JobState | str] | None) -> list[str] | None:
    if states is None:
        return None
    return [JobState(s).value for s in states]
