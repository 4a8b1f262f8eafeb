"""Operator and read-side methods of the SQLite backend, and the result role."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nuvom_backend_sqlite.rows import (
    JOB_COLUMNS,
    UPDATE_SQL,
    UPSERT_SQL,
    decode,
    insert_values,
    marks,
    placeholder,
    states_filter,
    update_values,
)
from nuvom_kernel.contracts import JobFilter, JobPage, decode_cursor, encode_cursor
from nuvom_kernel.errors import CorruptJobError, InvalidStateError
from nuvom_kernel.models import (
    RETRYABLE_STATES,
    TERMINAL_STATES,
    Job,
    JobState,
    WorkerInfo,
    now,
    validate_id,
)
from nuvom_support.backend_base import cancel_update, retry_update

if TYPE_CHECKING:
    from nuvom_backend_sqlite.database import Database
    from nuvom_support.doorbell import UdpDoorbell

_JOB_COLUMNS = JOB_COLUMNS
_PURGE_BATCH = 500
#: Pause between two purge batches: a writer waiting in SQLite's busy handler
#: gets the lock instead of losing every race to the next batch.
_PURGE_PAUSE_SECS = 0.002
_UPSERT_SQL = UPSERT_SQL


def _row_job(row: tuple[Any, ...]) -> Job:
    try:
        return decode(row)
    except CorruptJobError as exc:
        return placeholder(row[0], row[1], f"corrupt stored job: {exc}")



#: One index seek per queue (jobs_queue_state_ready), however many jobs are queued:
#: walk the distinct queues through the index, take each one's first queued ready_at.
_OLDEST_QUEUED_SQL = """
WITH RECURSIVE queues(name) AS (
    SELECT MIN(queue) FROM jobs
    UNION ALL
    SELECT (SELECT MIN(queue) FROM jobs WHERE queue > queues.name) FROM queues WHERE queues.name IS NOT NULL
)
SELECT MIN((SELECT MIN(ready_at) FROM jobs WHERE queue = queues.name AND state = 'queued'))
FROM queues WHERE name IS NOT NULL
"""

class AdminMixin:
    """Needs ``self.db`` (a :class:`Database`) and ``self.bell`` (a doorbell)."""

    db: Database
    bell: UdpDoorbell

    def verify(self) -> None:
        """``PRAGMA quick_check`` the whole file (about 0.1 s per 100 MB); raise
        :class:`~nuvom_kernel.errors.StoreCorruptError` naming the file and how
        to recover if it is damaged.  ``nuvom runworker`` calls it at start."""
        self.db.verify()

    # -- reading -----------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        validate_id(job_id)
        rows = self.db.query(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _row_job(rows[0]) if rows else None

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50,
                   cursor: str | None = None) -> JobPage:
        """Newest first by ``(created_at, id)`` with a keyset cursor: a page costs
        the same at the start of the table and a million rows in."""
        wanted = filter or JobFilter()
        where: list[str] = []
        params: list[Any] = []
        if wanted.states is not None:
            if not wanted.states:
                return JobPage([])
            states = sorted(s.value for s in wanted.states)
            where.append(f"state IN ({marks(len(states))})")
            params += states
        # "+queue": not through jobs_queue_state_ready, whose matches would all be sorted by
        # creation time; jobs_listing holds task and queue and is already in that order
        for column, value in (("task", wanted.task), ("+queue", wanted.queue)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if wanted.since is not None:
            where.append("created_at >= ?")
            params.append(wanted.since)
        if wanted.until is not None:
            where.append("created_at < ?")
            params.append(wanted.until)
        if wanted.search:
            # LIKE already ignores ASCII case (and SQLite's lower() is ASCII-only, so it added
            # nothing); without a function call SQLite checks the condition on jobs_listing's
            # entries and reads only the rows that match
            pattern = "%" + wanted.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(id LIKE ? ESCAPE '\\' OR task LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        if cursor:
            at, after_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [at, at, after_id]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        size = max(0, limit)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs {clause} ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = self.db.query(sql, (*params, size + 1))
        jobs = [_row_job(row) for row in rows[:size]]
        more = len(rows) > size and jobs
        return JobPage(jobs, encode_cursor(jobs[-1].created_at, jobs[-1].id) if more else None)

    def counts(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for queue, state, count in self.db.query("SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state"):
            result.setdefault(queue, {})[state] = count
        return result

    def oldest_queued_at(self) -> float | None:
        """When the longest-waiting ``queued`` job became claimable (its eta, or
        its creation time)."""
        rows = self.db.query(_OLDEST_QUEUED_SQL)
        return rows[0][0] if rows else None

    # -- operator actions --------------------------------------------------------

    def _change(self, job_id: str, step: Any) -> Any:
        """Read a job under the write lock, let ``step(job)`` change it, store it."""

        def txn(conn: sqlite3.Connection) -> Any:
            row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            job = decode(row)
            result = step(job)
            if result is not False and result is not None:
                conn.execute(UPDATE_SQL, update_values(job))
            return result

        return self.db.write(txn)

    def cancel(self, job_id: str, reason: str = "cancelled") -> Job | None:
        """Cancel a queued/scheduled job at once; flag a running one.  A job
        already finished is returned unchanged."""
        validate_id(job_id)
        found: list[Job] = []

        def step(job: Job) -> bool:
            found.append(job)
            return cancel_update(job, reason)

        self._change(job_id, step)
        return found[0] if found else None

    def retry(self, job_id: str) -> Job | None:
        """Re-queue a failed/dead/cancelled job; None if missing or in another state."""
        validate_id(job_id)

        def step(job: Job) -> Job | None:
            return retry_update(job) if job.state in RETRYABLE_STATES else None

        try:
            job: Job | None = self._change(job_id, step)
        except sqlite3.IntegrityError as exc:
            raise InvalidStateError(
                f"job {job_id} cannot be retried: another live job holds its unique key ({exc})"
            ) from exc
        if job is not None:
            self.bell.ring()
        return job

    def set_progress(self, job_id: str, token: int, progress: Any) -> bool:
        def step(job: Job) -> bool:
            if job.state != JobState.RUNNING or job.token != token:
                return False
            job.progress = progress
            job.updated_at = now()
            return True

        return bool(self._change(job_id, step))

    def purge(self, *, states: Iterable[JobState] | None = None, older_than: float | None = None) -> int:
        """Delete terminal jobs (only those in ``states`` if given) finished
        before ``older_than``, in batches so writers are never blocked long.
        Live jobs are never deleted."""
        terminal = {s.value for s in TERMINAL_STATES}
        wanted = sorted(terminal if states is None else terminal & set(states_filter(states) or []))
        if not wanted:
            return 0
        where = f"state IN ({marks(len(wanted))})"
        params: list[Any] = list(wanted)
        if older_than is not None:
            where += " AND finished_at < ?"
            params.append(older_than)
        sql = f"DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs WHERE {where} LIMIT {_PURGE_BATCH})"
        total = 0
        while True:
            deleted: int = self.db.write(lambda conn: conn.execute(sql, params).rowcount)
            total += deleted
            if deleted < _PURGE_BATCH:
                return total
            time.sleep(_PURGE_PAUSE_SECS)  # let waiting writers (renewals, claims) take the lock

    # -- workers -----------------------------------------------------------------

    def register_worker(self, info: WorkerInfo) -> None:
        self.db.write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO workers (id, heartbeat_at, data) VALUES (?,?,?)",
            (info.id, info.heartbeat_at, info.model_dump_json()),
        ))

    def list_workers(self) -> list[WorkerInfo]:
        rows = self.db.query("SELECT data FROM workers ORDER BY id")
        return [WorkerInfo.model_validate_json(data) for (data,) in rows]

    # -- the result role ---------------------------------------------------------

    def save(self, job: Job) -> None:
        """Store ``job`` as it is (insert or replace by id)."""
        values = insert_values(job)
        self.db.write(lambda conn: conn.execute(_UPSERT_SQL, values))

    def get_result(self, job_id: str) -> Job | None:
        """The finished job; ``None`` while it is live (a result exists only once it ended)."""
        job = self.get(job_id)
        return job if job is not None and job.is_terminal() else None
