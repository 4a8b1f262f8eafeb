"""Operator and read-side methods of the PostgreSQL backend, the result role and
the worker registry, and the maintenance the sweep runs (history, retention).

Reads cover both job tables: ``jobs`` (hot) and ``jobs_done`` (history).
Operator actions are rare; they read the row ``FOR UPDATE``, apply the shared
step of :mod:`nuvom_support.backend_base` with the server's clock, and write
the whole row back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import psycopg

from nuvom_backend_postgres import queries
from nuvom_backend_postgres.rows import (
    INSERT_COLUMNS,
    JOB_COLUMNS,
    decode,
    insert_values,
    json_or_none,
    read_job,
)
from nuvom_kernel.contracts import JobFilter, JobPage, decode_cursor, encode_cursor
from nuvom_kernel.errors import InvalidStateError
from nuvom_kernel.models import (
    RETRYABLE_STATES,
    TERMINAL_STATES,
    Job,
    JobState,
    WorkerInfo,
    validate_id,
)
from nuvom_support.backend_base import cancel_update, retry_update

if TYPE_CHECKING:
    from nuvom_backend_postgres.db import Database
    from nuvom_support.backend_base import Doorbell

_BATCH = 1000
#: The history mover's longest wait for the id lock (then it skips this round).
_MOVE_LOCK_WAIT_MS = 200
_UPDATE_COLUMNS = [c for c in INSERT_COLUMNS if c != "id"]
_ROW_SQL = f"SELECT {JOB_COLUMNS} FROM {{s}}.jobs WHERE id = %(id)s FOR UPDATE"


def _upsert_sql(table: str) -> str:
    marks = ", ".join("%s::jsonb" if c in ("history", "errors") else "%s" for c in INSERT_COLUMNS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in _UPDATE_COLUMNS)
    return f"INSERT INTO {{s}}.{table} ({', '.join(INSERT_COLUMNS)}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {sets}"


_UPSERT_HOT = _upsert_sql("jobs")
_UPSERT_DONE = _upsert_sql("jobs_done")


class AdminMixin:
    """Needs ``db``, ``doorbell``, ``q()``, ``_run()``, ``_wake_others()`` and the settings of the backend."""

    db: Database
    doorbell: Doorbell
    retention_secs: float | None
    keep_hot_secs: float
    maintenance_secs: float
    _ids_lock_shared: str
    _ids_lock: str
    _ids_lock_key: str

    # provided by the backend class
    q: Callable[[str], str]
    _run: Callable[[Callable[[psycopg.Connection[Any]], Any]], Any]
    _wake_others: Callable[[], None]

    # -- reading -----------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        validate_id(job_id)
        rows = self._run(lambda conn: conn.execute(self.q(
            f"SELECT {JOB_COLUMNS} FROM {{s}}.jobs WHERE id = %(id)s UNION ALL "
            f"SELECT {JOB_COLUMNS} FROM {{s}}.jobs_done WHERE id = %(id)s LIMIT 1"), {"id": job_id}).fetchall())
        return read_job(rows[0]) if rows else None

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50, cursor: str | None = None) -> JobPage:
        """Newest first by ``(created_at, id)``, keyset paged over both tables:
        each walks its ``(created_at DESC, id DESC)`` index for one page."""
        wanted = filter or JobFilter()
        where: list[str] = []
        params: dict[str, Any] = {}
        if wanted.states is not None:
            if not wanted.states:
                return JobPage([])
            where.append("state = ANY(%(states)s)")
            params["states"] = sorted(s.value for s in wanted.states)
        for column, value in (("task", wanted.task), ("queue", wanted.queue)):
            if value is not None:
                where.append(f"{column} = %({column})s")
                params[column] = value
        if wanted.since is not None:
            where.append("created_at >= %(since)s")
            params["since"] = wanted.since
        if wanted.until is not None:
            where.append("created_at < %(until)s")
            params["until"] = wanted.until
        if wanted.search:
            where.append("(strpos(lower(id), %(needle)s) > 0 OR strpos(lower(task), %(needle)s) > 0)")
            params["needle"] = wanted.search.lower()
        if cursor:
            at, after_id = decode_cursor(cursor)
            where.append("(created_at, id) < (%(at)s, %(after)s)")
            params.update(at=at, after=after_id)
        size = max(0, limit)
        params["n"] = size + 1
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        one = f"SELECT {JOB_COLUMNS}, created_at AS c FROM {{s}}.{{table}} {clause} ORDER BY created_at DESC, id DESC LIMIT %(n)s"
        statement = (f"({one.replace('{table}', 'jobs')}) UNION ALL ({one.replace('{table}', 'jobs_done')}) "
                     "ORDER BY c DESC, id DESC LIMIT %(n)s")
        rows = self._run(lambda conn: conn.execute(self.q(statement), params).fetchall())
        jobs = [read_job(row[:-1]) for row in rows[:size]]
        more = len(rows) > size and jobs
        return JobPage(jobs, encode_cursor(rows[size - 1][-1], jobs[-1].id) if more else None)

    def counts(self) -> dict[str, dict[str, int]]:
        rows = self._run(lambda conn: conn.execute(self.q(
            "SELECT queue, state, sum(n)::int8 FROM ("
            "SELECT queue, state, count(*) AS n FROM {s}.jobs GROUP BY 1, 2 UNION ALL "
            "SELECT queue, state, count(*) FROM {s}.jobs_done GROUP BY 1, 2) c GROUP BY 1, 2")).fetchall())
        result: dict[str, dict[str, int]] = {}
        for queue, state, count in rows:
            result.setdefault(queue, {})[state] = int(count)
        return result

    def oldest_queued_at(self) -> float | None:
        rows = self._run(lambda conn: conn.execute(self.q(
            "SELECT min(ready_at) FROM {s}.jobs WHERE state = 'queued'")).fetchall())
        return rows[0][0] if rows else None

    def cancel_requests(self, job_ids: Iterable[str]) -> set[str]:
        ids = list(job_ids)
        if not ids:
            return set()
        rows = self._run(lambda conn: conn.execute(self.q(
            "SELECT id FROM {s}.jobs WHERE id = ANY(%(ids)s) AND state = 'running' AND cancel_requested"),
            {"ids": ids}).fetchall())
        return {row[0] for row in rows}

    # -- operator actions --------------------------------------------------------

    def _change(self, job_id: str, step: Callable[[Job, float], Any]) -> Any:
        """Read the hot row ``FOR UPDATE``, let ``step(job, server_now)`` change
        it, write it back; ``None`` if the job is not in the hot table."""

        def txn(conn: psycopg.Connection[Any]) -> Any:
            with conn.transaction():
                row = conn.execute(self.q(_ROW_SQL), {"id": job_id}).fetchone()
                if row is None:
                    return None
                job = decode(row)
                at = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
                result = step(job, float(at[0]) if at else self.db.now())
                if result is not False and result is not None:
                    conn.execute(self.q(_UPSERT_HOT), insert_values(job))
                return result

        return self._run(txn)

    def cancel(self, job_id: str, reason: str = "cancelled") -> Job | None:
        validate_id(job_id)
        found: list[Job] = []

        def step(job: Job, at: float) -> bool:
            found.append(job)
            return cancel_update(job, reason, at)

        self._change(job_id, step)
        if found:
            return found[0]
        return self.get(job_id)  # finished and moved to history: returned unchanged

    def retry(self, job_id: str) -> Job | None:
        """Re-queue a failed/dead/cancelled job (same id, history kept)."""
        validate_id(job_id)

        def txn(conn: psycopg.Connection[Any]) -> Job | None:
            with conn.transaction():
                conn.execute(self._ids_lock_shared)
                row = conn.execute(self.q(_ROW_SQL), {"id": job_id}).fetchone()
                table = "jobs"
                if row is None:
                    row = conn.execute(self.q(_ROW_SQL.replace(".jobs ", ".jobs_done ")), {"id": job_id}).fetchone()
                    table = "jobs_done"
                if row is None:
                    return None
                job = decode(row)
                if job.state not in RETRYABLE_STATES:
                    return None
                at = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
                retry_update(job, float(at[0]) if at else None)
                if table == "jobs_done":
                    conn.execute(self.q("DELETE FROM {s}.jobs_done WHERE id = %s"), (job_id,))
                conn.execute(self.q(_UPSERT_HOT), insert_values(job))
                return job

        try:
            job: Job | None = self._run(txn)
        except psycopg.errors.UniqueViolation as exc:
            raise InvalidStateError(
                f"job {job_id} cannot be retried: another live job holds its unique key ({exc.diag.constraint_name})"
            ) from None
        if job is not None:
            self._wake_others()
        return job

    def set_progress(self, job_id: str, token: int, progress: Any) -> bool:
        rows = self._run(lambda conn: conn.execute(self.q(
            "UPDATE {s}.jobs SET progress = %(p)s, updated_at = extract(epoch FROM clock_timestamp())::float8 "
            "WHERE id = %(id)s AND token = %(token)s AND state = 'running' RETURNING id"),
            {"p": json_or_none(progress), "id": job_id, "token": token}).fetchall())
        return bool(rows)

    def purge(self, *, states: Iterable[JobState] | None = None, older_than: float | None = None) -> int:
        """Delete terminal jobs (only those in ``states`` if given) finished
        before ``older_than``, from both tables, in batches.  Never a live job."""
        terminal = {s.value for s in TERMINAL_STATES}
        wanted = sorted(terminal if states is None else terminal & {JobState(s).value for s in states})
        if not wanted:
            return 0
        total = 0
        for table in ("jobs", "jobs_done"):
            statement = self.q(
                f"DELETE FROM {{s}}.{table} WHERE id IN (SELECT id FROM {{s}}.{table} WHERE state = ANY(%(states)s) "
                f"AND (%(before)s::float8 IS NULL OR finished_at < %(before)s) LIMIT {_BATCH})")
            def batch(conn: psycopg.Connection[Any], statement: str = statement) -> int:
                return conn.execute(statement, {"states": wanted, "before": older_than}).rowcount

            while True:
                deleted = self._run(batch)
                total += deleted
                if deleted < _BATCH:
                    break
        return total

    def maintain(self) -> dict[str, int]:
        """Move finished jobs older than ``keep_hot_secs`` to ``jobs_done`` and
        delete history past ``retention_secs``, a batch at a time.

        A move takes the id lock exclusively (every enqueue and retry holds it
        shared: one racing with a move could store a job id twice),
        waiting at most ``_MOVE_LOCK_WAIT_MS``.  It waits rather than only
        trying: under steady enqueue traffic some enqueue nearly always holds
        the lock, and a mover that only tried never moved anything (R9 on
        PostgreSQL: eight producers kept every finished job in the hot table).
        A waiting exclusive request goes ahead of later shared ones, so it gets
        the lock once the enqueues in flight commit; enqueues then wait for one
        batch move at most."""
        moved = deleted = 0
        if time.monotonic() - self.db.clock_read_at >= self.maintenance_secs:
            self.db.server_now()  # keep the clock estimate fresh (idle claims refresh it too)
        params = {"lock": self._ids_lock_key, "keep": float(self.keep_hot_secs), "batch": _BATCH}
        while True:
            def move(conn: psycopg.Connection[Any]) -> Any:
                try:
                    with conn.transaction():
                        conn.execute(f"SET LOCAL lock_timeout = '{_MOVE_LOCK_WAIT_MS}ms'")
                        conn.execute(self._ids_lock)  # held here, MOVE_SQL's try-lock re-enters it
                        return conn.execute(self.q(queries.MOVE_SQL), params).fetchone()
                except psycopg.errors.LockNotAvailable:  # a long caller transaction holds it: next round
                    return None

            row = self._run(move)
            if not row or not row[0]:
                break
            moved += int(row[1])
            if row[1] < _BATCH:
                break
        expire = {"retention": self.retention_secs, "batch": _BATCH}
        while True:
            count = self._run(lambda conn: conn.execute(self.q(queries.EXPIRE_SQL), expire).rowcount)
            deleted += count
            if count < _BATCH:
                break
        return {"moved": moved, "deleted": deleted}

    # -- workers -----------------------------------------------------------------

    def register_worker(self, info: WorkerInfo) -> None:
        self._run(lambda conn: conn.execute(self.q(queries.REGISTER_WORKER_SQL),
                                            {"id": info.id, "at": info.heartbeat_at, "data": info.model_dump_json()}))

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._run(lambda conn: conn.execute(self.q("SELECT data FROM {s}.workers ORDER BY id")).fetchall())
        return [WorkerInfo.model_validate_json(data) for (data,) in rows]

    # -- the result role ---------------------------------------------------------

    def save(self, job: Job) -> None:
        """Store ``job`` as it is: a finished job in the history table, a live one in the hot table."""
        values = insert_values(job)

        def txn(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                if job.is_terminal():
                    conn.execute(self.q("DELETE FROM {s}.jobs WHERE id = %s"), (job.id,))
                    conn.execute(self.q(_UPSERT_DONE), values)
                else:
                    conn.execute(self.q("DELETE FROM {s}.jobs_done WHERE id = %s"), (job.id,))
                    conn.execute(self.q(_UPSERT_HOT), values)

        self._run(txn)

    def get_result(self, job_id: str) -> Job | None:
        """The finished job; ``None`` while it is live."""
        job = self.get(job_id)
        return job if job is not None and job.is_terminal() else None
