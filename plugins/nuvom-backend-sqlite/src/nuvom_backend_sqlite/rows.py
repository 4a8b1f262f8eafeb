"""Between :class:`Job` objects and rows of the ``jobs`` table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic import ValidationError

from nuvom_kernel.errors import CorruptJobError
from nuvom_kernel.models import LEASED_STATES, Job, JobState, now

#: Every column, in the order :func:`insert_values` produces them.
INSERT_SQL = (
    "INSERT INTO jobs (id, state, queue, priority, ready_at, created_at, finished_at, "
    "unique_key, token, lease_expires_at, task, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT DO NOTHING"
)
#: The columns a transition can change.  ``priority``, ``unique_key``,
#: ``queue``, ``created_at`` and ``task`` never change after enqueue; leaving
#: them out spares the indexes on them.
UPDATE_SQL = "UPDATE jobs SET state=?, ready_at=?, finished_at=?, token=?, lease_expires_at=?, data=? WHERE id=?"
#: SQLite before 3.32 allows 999 parameters per statement.
CHUNK = 500


def ready_at(job: Job) -> float:
    return job.eta if job.eta is not None else job.created_at


def insert_values(job: Job) -> tuple[Any, ...]:
    return (
        job.id, job.state.value, job.queue, job.priority, ready_at(job), job.created_at,
        job.finished_at, job.unique_key, job.token, job.lease_expires_at, job.task, job.to_json(),
    )


def update_values(job: Job) -> tuple[Any, ...]:
    return (job.state.value, ready_at(job), job.finished_at, job.token, job.lease_expires_at, job.to_json(), job.id)


def decode(job_id: str, data: str, lease_expires_at: float | None = None) -> Job:
    """The job stored in a row; the lease column overrides the JSON copy."""
    try:
        job = Job.from_json(data)
    except (ValidationError, ValueError) as exc:
        raise CorruptJobError(f"job {job_id!r}: stored JSON cannot be decoded ({exc.__class__.__name__})") from exc
    if job.id != job_id:
        # a damaged or copied row: trusting the JSON would claim or update another job's row
        raise CorruptJobError(f"job {job_id!r}: stored JSON describes another job ({job.id!r})")
    if job.state in LEASED_STATES:
        job.lease_expires_at = lease_expires_at
    return job


def placeholder(job_id: str, task: str, reason: str) -> Job:
    """What readers see for a row that cannot be decoded: a dead job saying why."""
    at = now()
    job = Job(id="x", task=task or "?", state=JobState.DEAD, reason=reason, created_at=at, finished_at=at)
    job.id = job_id  # the stored id may be anything; do not validate it here
    return job


def quarantine(conn: sqlite3.Connection, job_id: str, task: str, data: str | None, reason: str) -> None:
    """Move an undecodable row aside and leave a dead placeholder in its place."""
    at = now()
    conn.execute("INSERT INTO quarantine (id, at, reason, data) VALUES (?,?,?,?)", (job_id, at, reason, data))
    job = placeholder(job_id, task, f"corrupt stored job, quarantined: {reason}")
    conn.execute(
        "UPDATE jobs SET state='dead', finished_at=?, token=NULL, lease_expires_at=NULL, unique_key=NULL, "
        "data=? WHERE id=?",
        (at, job.to_json(), job_id),
    )


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def marks(count: int) -> str:
    return ",".join("?" * count)


def states_filter(states: Iterable[JobState | str] | None) -> list[str] | None:
    if states is None:
        return None
    return [JobState(s).value for s in states]
