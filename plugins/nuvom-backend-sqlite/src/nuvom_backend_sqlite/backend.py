"""The SQLite queue and result backend: the hot paths (enqueue, claim, finish).

Operator and read-side methods live in :mod:`nuvom_backend_sqlite.admin`.
Every state change uses the shared steps of :mod:`nuvom_support.backend_base`,
so a job moves exactly as it does on every other backend; this module only
makes each change one SQLite transaction.  A transition reads and writes only
the hot columns of a row and appends to its history (:mod:`.rows`); the claim
is one ``UPDATE ... RETURNING`` whose SQL mirrors ``claim_update`` and
``start_update`` (``test_sqlite_protocol`` checks that they agree).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nuvom_backend_sqlite.admin import AdminMixin
from nuvom_backend_sqlite.database import HAS_RETURNING, Database
from nuvom_backend_sqlite.rows import (
    FINISH_SQL,
    HOT_JOB_COLUMNS,
    HOT_UPDATE_SQL,
    INSERT_SQL,
    JOB_COLUMNS,
    append_sql,
    chunks,
    decode,
    finish_values,
    history_json,
    hot_update_values,
    insert_values,
    marks,
    quarantine,
    stores_result,
)
from nuvom_backend_sqlite.schedules import SqliteSchedules
from nuvom_backend_sqlite.schema import LEASED, LIVE
from nuvom_kernel.contracts import Completion, Exchanged, Swept
from nuvom_kernel.errors import ConfigError, CorruptJobError
from nuvom_kernel.models import Job, JobState, Outcome, Transition, now
from nuvom_support.backend_base import (
    QueueBackendBase,
    ViaExchange,
    can_start,
    claim_update,
    enqueue_update,
    finish_update,
    release_update,
    start_update,
    sweep_update,
)
from nuvom_support.doorbell import UdpDoorbell

_CLAIMABLE = "state IN ('queued','scheduled') AND (state = 'queued' OR ready_at <= ?)"
_PER_QUEUE = (
    f"SELECT id, priority, ready_at FROM jobs WHERE queue = ? AND {_CLAIMABLE} "
    "ORDER BY priority DESC, ready_at, id LIMIT ?"
)


#: Where ``data`` is in :func:`insert_values`.
_DATA = 11
#: Stands for the attempt number in the history note of a start.
_ATTEMPT = "@ATTEMPT@"


def candidates_sql(queue_count: int) -> str:
    """Ids of the next claimable jobs, best first.  One queue walks the claim
    index in order; several queues take the best ``limit`` of each and merge,
    so no query ever sorts the whole backlog."""
    if queue_count == 1:
        return f"SELECT id FROM ({_PER_QUEUE})"
    parts = " UNION ALL ".join(f"SELECT * FROM ({_PER_QUEUE})" for _ in range(queue_count))
    return f"SELECT id FROM ({parts}) ORDER BY priority DESC, ready_at, id LIMIT ?"


class SqliteBackend(SqliteSchedules, AdminMixin, ViaExchange, QueueBackendBase):
    """Queue and results in one SQLite file (both protocols, one object).

    ``use_returning=False`` selects the path for SQLite older than 3.35
    (select the ids, then update them, in the same ``BEGIN IMMEDIATE``); by
    default ``UPDATE ... RETURNING`` is used where available.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout_secs: float = 30.0,
        use_returning: bool | None = None,
        wal_limit_bytes: int = 32 * 1024 * 1024,
        checkpoint_every: int = 1000,
    ) -> None:
        super().__init__()
        if use_returning and not HAS_RETURNING:
            raise ConfigError(f"use_returning needs SQLite >= 3.35; this Python has {sqlite3.sqlite_version}")
        self.use_returning = HAS_RETURNING if use_returning is None else use_returning
        self.db = Database(
            path, synchronous=synchronous, busy_timeout_secs=busy_timeout_secs,
            wal_limit_bytes=wal_limit_bytes, checkpoint_every=checkpoint_every,
        )
        self.path: Path = self.db.path
        self.bell = UdpDoorbell(Path(f"{self.path}.doorbell"))

    def __repr__(self) -> str:
        return f"SqliteBackend({str(self.path)!r}, synchronous={self.db.synchronous})"

    # -- enqueue ---------------------------------------------------------------

    def enqueue(self, job: Job) -> Job:
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Store ``jobs`` in one transaction.  A job whose ``unique_key`` is held
        by a live job (or by an earlier job of the batch), or whose id is
        already stored, is not added: the stored job is returned in its place."""
        jobs = list(jobs)
        if not jobs:
            return []
        self.db.check_room()  # a nearly full disk keeps its room for running what is stored
        at = now()
        for job in jobs:
            enqueue_update(job, at)
        rows = [insert_values(job) for job in jobs]

        def txn(conn: sqlite3.Connection) -> tuple[list[Job], bool]:
            result = list(jobs)
            skip = self._dedupe(conn, jobs, result)
            fresh = [i for i in range(len(jobs)) if i not in skip]
            before = conn.total_changes
            conn.executemany(INSERT_SQL, [rows[i] for i in fresh])
            if conn.total_changes - before != len(fresh):
                self._resolve_existing_ids(conn, [(i, rows[i]) for i in fresh], result)
            ready = any(result[i] is jobs[i] and jobs[i].state == JobState.QUEUED for i in fresh)
            return result, ready

        result, ready = self.db.write(txn)
        if ready:
            self.bell.ring()
        return result

    @staticmethod
    def _dedupe(conn: sqlite3.Connection, jobs: list[Job], result: list[Job]) -> set[int]:
        keyed = [i for i, job in enumerate(jobs) if job.unique_key is not None]
        if not keyed:
            return set()
        holders: dict[str, Job] = {}
        keys = list({jobs[i].unique_key for i in keyed if jobs[i].unique_key is not None})
        for part in chunks(keys):
            sql = f"SELECT unique_key, {JOB_COLUMNS} FROM jobs WHERE unique_key IN ({marks(len(part))}) AND state IN {LIVE}"
            for key, *row in conn.execute(sql, part):
                holders[key] = decode(row)
        skip: set[int] = set()
        for i in keyed:
            key = jobs[i].unique_key
            assert key is not None
            if key in holders:
                result[i] = holders[key]
                skip.add(i)
            else:
                holders[key] = jobs[i]
        return skip

    @staticmethod
    def _resolve_existing_ids(conn: sqlite3.Connection, attempted: list[tuple[int, tuple[Any, ...]]], result: list[Job]) -> None:
        """Some inserts hit an existing id: hand back what is stored for those."""
        mine = {row[0]: row[_DATA] for _, row in attempted}
        stored: dict[str, Job] = {}
        ids = list(mine)
        for part in chunks(ids):
            sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({marks(len(part))})"
            for row in conn.execute(sql, part):
                if row[2] != mine[row[0]]:
                    stored[row[0]] = decode(row)
        for i, row in attempted:
            if row[0] in stored:
                result[i] = stored[row[0]]

    # -- claim and finish ------------------------------------------------------

    def exchange(
        self,
        completions: Sequence[Completion],
        queues: Sequence[str],
        limit: int,
        lease_secs: float,
        worker_id: str,
        *,
        starts: Mapping[str, int] | None = None,
        start_now: int = 0,
    ) -> Exchanged:
        """Finish ``completions``, start ``starts`` and claim up to ``limit``
        jobs in ONE transaction.  With nothing to finish or start, a read-only
        check runs first so an idle worker never takes the write lock."""
        wanted = list(dict.fromkeys(queues)) if limit > 0 else []
        if not completions and not starts and (not wanted or not self._has_claimable(wanted)):
            return Exchanged([], [], set())

        def txn(conn: sqlite3.Connection) -> tuple[list[bool], bool, set[str], list[Job]]:
            accepted, requeued, started = (
                self._finish_and_start_in(conn, completions, starts or {}) if completions or starts else ([], False, set())
            )
            claimed = self._claim_in(conn, wanted, limit, lease_secs, worker_id, start_now) if wanted else []
            return accepted, requeued, started, claimed

        accepted, requeued, started, claimed = self.db.write(txn)
        if requeued:
            self.bell.ring()
        return Exchanged(accepted, claimed, started)

    def _has_claimable(self, queues: list[str]) -> bool:
        sql = f"SELECT 1 FROM jobs WHERE queue IN ({marks(len(queues))}) AND {_CLAIMABLE} LIMIT 1"
        return bool(self.db.query(sql, (*queues, now())))

    def _claim_in(self, conn: sqlite3.Connection, queues: list[str], limit: int, lease_secs: float,
                  worker_id: str, start_now: int = 0) -> list[Job]:
        at = now()
        params: list[Any] = []
        for queue in queues:
            params += [queue, at, limit]
        if len(queues) > 1:
            params.append(limit)
        sub = candidates_sql(len(queues))
        if self.use_returning:
            rows = self._claim_statement(conn, sub, params, at, lease_secs, worker_id, start_now)
        else:
            rows = self._claim_select_update(conn, sub, params, at, lease_secs, worker_id, start_now)
        if not rows:
            return []
        # the tokens handed out were counter + 1 .. counter + len(rows)
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'token'", (len(rows),))
        jobs: list[Job] = []
        for row in sorted(rows, key=lambda r: r[9]):  # by token: the claim order
            try:
                jobs.append(decode(row))
            except CorruptJobError as exc:
                quarantine(conn, row, str(exc))
        return jobs

    @staticmethod
    def _claim_statement(conn: sqlite3.Connection, sub: str, params: list[Any], at: float, lease_secs: float,
                         worker_id: str, start_now: int) -> list[Any]:
        """ONE statement: rank the candidates in claim order, then the first
        ``start_now`` are started (``start_update``; not a job whose lease
        expired while it ran, ``starts_at_claim``) and the others claimed
        (``claim_update``); the token of the n-th is the counter + n.  The
        history entries are made by the model, so they are the same as on
        every other backend, to the last digit of the time."""
        claimed = history_json([Transition(state=JobState.CLAIMED, at=at, note=f"claimed by {worker_id}")])
        running = history_json([Transition(state=JobState.RUNNING, at=at, note=f"attempt {_ATTEMPT} by {worker_id}")])
        before, after = running.split(_ATTEMPT, 1)  # the first: the worker id comes after
        k = len(params)
        # a job whose lease expired while it ran is only claimed (starts_at_claim)
        start = f"(c.n <= ?{k + 1} AND jobs.lease_expiries = 0)"
        entry = f"CASE WHEN {start} THEN ?{k + 6} || (attempts + 1) || ?{k + 7} ELSE ?{k + 5} END"
        sql = (
            f"WITH c AS (SELECT id, row_number() OVER (ORDER BY priority DESC, ready_at, id) AS n "
            f"FROM jobs WHERE id IN ({sub})) "
            f"UPDATE jobs SET state = CASE WHEN {start} THEN 'running' ELSE 'claimed' END, "
            f"token = (SELECT value FROM meta WHERE key = 'token') + c.n, "
            f"lease_expires_at = ?{k + 2}, worker_id = ?{k + 3}, updated_at = ?{k + 4}, "
            f"attempts = attempts + ({start}), started_at = CASE WHEN {start} THEN ?{k + 4} ELSE started_at END, "
            f"history = {append_sql('history', entry)} "
            f"FROM c WHERE jobs.id = c.id RETURNING {JOB_COLUMNS}"
        )
        return conn.execute(sql, [*params, start_now, at + lease_secs, worker_id, at, claimed, before, after]).fetchall()

    @staticmethod
    def _claim_select_update(conn: sqlite3.Connection, sub: str, params: list[Any], at: float, lease_secs: float,
                             worker_id: str, start_now: int) -> list[Any]:
        """For SQLite < 3.35: select the candidates, apply the shared steps,
        write the hot columns; rows as the claim statement returns them."""
        rows = conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({sub}) ORDER BY priority DESC, ready_at, id", params
        ).fetchall()
        first = conn.execute("SELECT value FROM meta WHERE key = 'token'").fetchone()[0] + 1
        updates, out = [], []
        for offset, row in enumerate(rows):
            token = first + offset
            try:
                job = decode(row, hot_only=True)
            except CorruptJobError:
                out.append((*row[:9], token, *row[10:]))  # quarantined by the caller
                continue
            claim_update(job, token, lease_secs, worker_id, at, start=offset < start_now)
            updates.append(hot_update_values(job))
        conn.executemany(HOT_UPDATE_SQL, updates)
        ids = [row[0] for row in rows if row[0] not in {o[0] for o in out}]
        for part in chunks(ids):
            out += conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({marks(len(part))})", part).fetchall()
        return out

    def _finish_and_start_in(self, conn: sqlite3.Connection, completions: Sequence[Completion],
                             starts: Mapping[str, int]) -> tuple[list[bool], bool, set[str]]:
        """Apply ``completions`` in order, then ``starts``, with one read of
        the rows concerned and one write per kind (a few statements whatever
        the batch size).  A terminal outcome needs only the row's token: it is
        written by :data:`FINISH_SQL` without decoding the job; a retry, which
        reads the job's options, goes through ``finish_update``.  A job
        finished here is no longer ``claimed``: its start is refused, as it
        would be in a later call."""
        rows: dict[str, Any] = {}
        ids = list({c.job_id for c in completions} | set(starts))
        for part in chunks(ids):
            sql = f"SELECT {HOT_JOB_COLUMNS} FROM jobs WHERE id IN ({marks(len(part))}) AND state IN {LEASED}"
            for row in conn.execute(sql, part):
                rows[row[0]] = row
        loaded: dict[str, Job | None] = {}

        def load(job_id: str) -> Job | None:
            if job_id not in loaded:
                loaded[job_id] = None
                row = rows.get(job_id)
                if row is not None:
                    try:
                        loaded[job_id] = decode(row, hot_only=True)
                    except CorruptJobError as exc:
                        quarantine(conn, row, str(exc))
            return loaded[job_id]

        at = now()
        changed: dict[str, Job] = {}
        finished: list[tuple[Any, ...]] = []
        done: set[str] = set()
        accepted: list[bool] = []
        for completion in completions:
            job_id, outcome = completion.job_id, completion.outcome
            row = rows.get(job_id)
            # refused: not leased, another token, or already finished in this call
            ok = row is not None and row[9] == completion.token and job_id not in done
            if ok and row is not None:
                values = None if outcome.kind == "retry" or job_id in loaded else self._finish_values(row, outcome, at)
                if values is not None:
                    finished.append(values)
                else:
                    job = load(job_id)
                    ok = job is not None and finish_update(job, completion.token, outcome, at)
                    if ok and job is not None:
                        changed[job_id] = job
            if ok:
                done.add(job_id)
            accepted.append(ok)
        requeued = any(job.state == JobState.QUEUED for job in changed.values())
        started: set[str] = set()
        for job_id, token in starts.items():
            job = load(job_id) if job_id not in done else None
            if job is not None and can_start(job, token):
                start_update(job, at)
                changed[job_id] = job
                started.add(job_id)
        if finished:
            conn.executemany(FINISH_SQL, finished)
        if changed:
            conn.executemany(HOT_UPDATE_SQL, [hot_update_values(job) for job in changed.values()])
        return accepted, requeued, started

    @staticmethod
    def _finish_values(row: Sequence[Any], outcome: Outcome, at: float) -> tuple[Any, ...] | None:
        """:data:`FINISH_SQL`'s parameters for a row of :data:`HOT_JOB_COLUMNS`,
        or None when the row must be decoded after all (a result to store whose
        job's JSON does not parse: decoding quarantines it)."""
        store = True
        if outcome.kind == "succeeded" and outcome.result is not None:
            try:
                store = stores_result(row[2])
            except (ValueError, TypeError, RecursionError):
                return None
        return finish_values(row[0], outcome, at, store)

    # -- leases ------------------------------------------------------------------

    def renew(self, leases: Mapping[str, int], lease_secs: float) -> set[str]:
        if not leases:
            return set()

        def txn(conn: sqlite3.Connection) -> set[str]:
            until = now() + lease_secs
            lost: set[str] = set()
            for job_id, token in leases.items():
                cursor = conn.execute(
                    f"UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND token = ? AND state IN {LEASED}",
                    (until, job_id, token),
                )
                if cursor.rowcount == 0:
                    lost.add(job_id)
            return lost

        return self.db.write(txn)

    def release(self, job_id: str, token: int) -> bool:
        def txn(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                f"SELECT {HOT_JOB_COLUMNS} FROM jobs WHERE id = ? AND token = ? AND state = 'claimed'", (job_id, token)
            ).fetchone()
            if row is None:
                return False
            try:
                job = decode(row, hot_only=True)
            except CorruptJobError as exc:
                quarantine(conn, row, str(exc))
                return False
            release_update(job, now())
            conn.execute(HOT_UPDATE_SQL, hot_update_values(job))
            return True

        released = self.db.write(txn)
        if released:
            self.bell.ring()
        return released

    def sweep(self) -> Swept:
        """Requeue (or kill) jobs whose lease expired; also keeps the WAL bounded."""
        moved, requeued = 0, False
        dead: list[tuple[Job, Job]] = []
        expired_sql = f"SELECT 1 FROM jobs WHERE state IN {LEASED} AND lease_expires_at < ? LIMIT 1"
        if self.db.query(expired_sql, (now(),)):

            def txn(conn: sqlite3.Connection) -> tuple[int, bool]:
                dead.clear()  # a retried transaction starts over
                rows = conn.execute(
                    f"SELECT {HOT_JOB_COLUMNS} FROM jobs WHERE state IN {LEASED} AND lease_expires_at < ?",
                    (now(),),
                ).fetchall()
                jobs: list[Job] = []
                for row in rows:
                    try:
                        jobs.append(decode(row, hot_only=True))
                    except CorruptJobError as exc:
                        quarantine(conn, row, str(exc))
                at = now()
                for job in jobs:
                    sweep_update(job, at, dead)
                conn.executemany(HOT_UPDATE_SQL, [hot_update_values(job) for job in jobs])
                return len(rows), any(job.state == JobState.QUEUED for job in jobs)

            moved, requeued = self.db.write(txn)
        if requeued:
            self.bell.ring()
        self.db.checkpoint()
        self.db.secure_files()
        return Swept(moved, dead)

    # -- wake-ups and lifetime ---------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self.bell.subscribe(callback)

    def close(self) -> None:
        """Close connections and the doorbell.  Idempotent; a later call on the
        object opens new connections."""
        self.bell.close()
        self.db.close()
