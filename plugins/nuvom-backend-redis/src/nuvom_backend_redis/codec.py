"""Between :class:`Job` objects and the job hashes the scripts keep.

A job hash holds the **cold** part of a job, ``data`` (the job as JSON
without the fields that change), written once at enqueue, and one field per
**hot** value (state, token, lease, attempts, times, result ...), with
``history`` and ``errors`` as JSON arrays the scripts only append to.
:func:`decode` splices the hot fields into the cold JSON and validates the
whole in one pass, as the SQLite backend does with its columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from nuvom_kernel.errors import CorruptJobError
from nuvom_kernel.models import ErrorInfo, Job, JobState, Transition, now

#: Fields kept in hash fields of their own, never in ``data``.
HOT_FIELDS = frozenset({
    "state", "attempts", "eta", "updated_at", "started_at", "finished_at", "token", "lease_expires_at",
    "worker_id", "result", "progress", "reason", "cancel_requested", "lease_expiries", "max_retries",
    "history", "errors",
})
_HISTORY = TypeAdapter(list[Transition])
_ERRORS = TypeAdapter(list[ErrorInfo])
_dumps = json.dumps


def num(value: float | int | None) -> str:
    """A number as hash text (``repr`` keeps every digit of a float); ``''`` for None."""
    return "" if value is None else repr(value)


def json_text(value: Any) -> str:
    return to_json(value).decode()


def opt_json(value: Any) -> str:
    """A JSON value as hash text; ``''`` (no field) for ``None``."""
    return "" if value is None else json_text(value)


def cold_json(job: Job) -> str:
    return job.model_dump_json(exclude=HOT_FIELDS)  # type: ignore[arg-type]


def enqueue_args(job: Job) -> list[str]:
    """The 17 values :data:`~nuvom_backend_redis.scripts.ENQUEUE` takes for one job."""
    return [
        job.id, job.queue, str(job.priority), repr(job.created_at), num(job.eta), job.unique_key or "",
        cold_json(job), job.task, "1" if job.store_result else "0", str(job.max_lease_expiries),
        str(job.max_retries), str(job.attempts), str(job.lease_expiries),
        _HISTORY.dump_json(job.history).decode(), _ERRORS.dump_json(job.errors).decode(),
        opt_json(job.result), opt_json(job.progress),
    ]


def save_args(job: Job) -> list[str]:
    """What :data:`~nuvom_backend_redis.scripts.SAVE` takes: the indexed values, then every field."""
    fields = [
        job.id, cold_json(job), job.state.value, str(job.attempts), num(job.eta), repr(job.updated_at),
        num(job.started_at), num(job.finished_at), num(job.token), num(job.lease_expires_at), job.worker_id or "",
        opt_json(job.result), opt_json(job.progress), job.reason or "", "1" if job.cancel_requested else "0",
        str(job.lease_expiries), str(job.max_retries), _HISTORY.dump_json(job.history).decode(),
        _ERRORS.dump_json(job.errors).decode(),
    ]
    return [job.state.value, job.queue, str(job.priority), repr(job.created_at), job.unique_key or "",
            "1" if job.store_result else "0", str(job.max_lease_expiries), job.task, *fields]


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def decode(values: Sequence[Any]) -> Job:
    """The job in a reply of :data:`~nuvom_backend_redis.scripts.FIELDS`.

    Raises :class:`CorruptJobError` for a hash that does not describe a valid job."""
    (job_id, data, state, attempts, eta, updated, started, finished, token, lease, worker, result, progress,
     reason, cancel, lexp, maxr, history, errors) = values
    try:
        if not isinstance(data, str) or not data.endswith("}"):
            raise ValueError("the JSON is not an object")
        hot: dict[str, Any] = {
            "state": state, "attempts": int(attempts or 0), "eta": _float(eta), "started_at": _float(started),
            "finished_at": _float(finished), "token": int(token) if token else None,
            "lease_expires_at": _float(lease), "worker_id": worker or None, "reason": reason or None,
            "cancel_requested": cancel == "1", "lease_expiries": int(lexp or 0),
        }
        if maxr:
            hot["max_retries"] = int(maxr)
        if updated:
            hot["updated_at"] = float(updated)
        text = (f'{data[:-1]},{_dumps(hot)[1:-1]},"result":{result or "null"},"history":{history or "[]"},'
                f'"errors":{errors or "[]"},"progress":{progress or "null"}}}')
        job = Job.model_validate_json(text)
    except (ValidationError, ValueError, TypeError, RecursionError) as exc:
        raise CorruptJobError(f"job {job_id!r}: stored job cannot be decoded ({exc.__class__.__name__})") from exc
    if job.id != job_id:
        raise CorruptJobError(f"job {job_id!r}: stored JSON describes another job ({job.id!r})")
    return job


def decode_or_placeholder(values: Sequence[Any]) -> Job:
    """:func:`decode`, or a dead job saying why for a hash that cannot be read."""
    try:
        return decode(values)
    except CorruptJobError as exc:
        at = now()
        job = Job(id="x", task="?", state=JobState.DEAD, reason=f"corrupt stored job: {exc}", created_at=at,
                  finished_at=at)
        job.id = str(values[0])
        return job


def outcome_args(completion: Any) -> list[str]:
    """One completion as :data:`~nuvom_backend_redis.scripts.EXCHANGE` takes it."""
    outcome = completion.outcome

    def opt(value: str | None) -> str:
        return "" if value is None else "=" + value

    delay = None if outcome.eta is None else repr(outcome.eta - outcome.at)
    error = None if outcome.error is None else outcome.error.model_dump_json()
    return [completion.job_id, str(completion.token), outcome.kind, opt(json_text(outcome.result)), opt(error),
            opt(delay), opt(outcome.reason), opt(outcome.note)]
