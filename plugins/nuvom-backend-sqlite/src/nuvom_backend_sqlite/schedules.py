"""The schedule store role of the SQLite backend: a ``schedules`` table.

A fire is one ``BEGIN IMMEDIATE`` transaction: read the schedule, check it
is active and still at the expected fire time, insert the occurrence's jobs
(ids derived from schedule and fire time; an id already stored stays one
job) and write the advanced schedule.  SQLite lets one writer in at a time,
so racing schedulers in any number of processes fire each occurrence once.

The table is created on first use (``CREATE TABLE IF NOT EXISTS``), so a
database written by an older version gains it without a migration.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from nuvom_backend_sqlite.rows import INSERT_SQL, insert_values
from nuvom_kernel.models import Job, JobState, now
from nuvom_kernel.schedules import Schedule, ScheduleState
from nuvom_support.backend_base import enqueue_update
from nuvom_support.schedules import (
    apply_fire,
    can_fire,
    check_schedule_id,
    merge_schedule,
    purge_states,
    purgeable,
)

if TYPE_CHECKING:
    from nuvom_backend_sqlite.database import Database
    from nuvom_support.doorbell import UdpDoorbell

SCHEDULE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS schedules (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        next_fire_at REAL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_fire_at) WHERE state = 'active'",
)
_UPSERT = ("INSERT INTO schedules (id, state, next_fire_at, data) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (id) DO UPDATE SET state=excluded.state, next_fire_at=excluded.next_fire_at, data=excluded.data")


def _row(schedule: Schedule) -> tuple[str, str, float | None, str]:
    return (schedule.id, schedule.state.value, schedule.next_fire_at,
            json.dumps(schedule.to_dict(), separators=(",", ":")))


def _load(data: str) -> Schedule:
    return Schedule.from_dict(json.loads(data))


class SqliteSchedules:
    """Mixed into :class:`~nuvom_backend_sqlite.backend.SqliteBackend`."""

    db: Database
    bell: UdpDoorbell
    _dedupe: Any  # the backend's unique-key check, run inside the fire's transaction

    def _schedule_write(self, fn: Any) -> Any:
        if not self.__dict__.get("_schedule_table_ready"):
            def create(conn: sqlite3.Connection) -> None:
                for sql in SCHEDULE_SCHEMA:
                    conn.execute(sql)
            self.db.write(create)
            self.__dict__["_schedule_table_ready"] = True
        return self.db.write(fn)

    def _schedule_query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if not self.__dict__.get("_schedule_table_ready"):
            self._schedule_write(lambda conn: None)
        return self.db.query(sql, params)

    @staticmethod
    def _get_in(conn: sqlite3.Connection, schedule_id: str) -> Schedule | None:
        row = conn.execute("SELECT data FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
        return None if row is None else _load(row[0])

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        check_schedule_id(schedule.id)

        def txn(conn: sqlite3.Connection) -> Schedule:
            stored = self._get_in(conn, schedule.id)
            if stored is None:
                conn.execute(_UPSERT, _row(schedule))
                return schedule.copy_()
            if replace:
                merged = merge_schedule(stored, schedule)
                if merged is not None:
                    conn.execute(_UPSERT, _row(merged))
                    return merged
            return stored

        result: Schedule = self._schedule_write(txn)
        return result

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        rows = self._schedule_query("SELECT data FROM schedules WHERE id = ?", (schedule_id,))
        return _load(rows[0][0]) if rows else None

    def list_schedules(self) -> list[Schedule]:
        return [_load(r[0]) for r in self._schedule_query("SELECT data FROM schedules ORDER BY id")]

    def due_schedules(self, at: float, limit: int) -> list[Schedule]:
        rows = self._schedule_query(
            "SELECT data FROM schedules WHERE state = 'active' AND next_fire_at <= ? "
            "ORDER BY next_fire_at, id LIMIT ?", (at, max(0, int(limit))))
        return [_load(r[0]) for r in rows]

    def fire_schedule(self, schedule_id: str, expected_next: float, jobs: Sequence[Job],
                      next_fire_at: float | None, *, missed: int = 0, coalesced: int = 0) -> bool:
        at = now()
        jobs = [enqueue_update(job.snapshot(), at) for job in jobs]
        rows = [insert_values(job) for job in jobs]

        def txn(conn: sqlite3.Connection) -> tuple[bool, bool]:
            stored = self._get_in(conn, schedule_id)
            if stored is None or not can_fire(stored, expected_next):
                return False, False
            result = list(jobs)
            skip = self._dedupe(conn, jobs, result) if jobs else set()
            fresh = [rows[i] for i in range(len(jobs)) if i not in skip]
            conn.executemany(INSERT_SQL, fresh)  # an id already stored: one job (ON CONFLICT DO NOTHING)
            conn.execute(_UPSERT, _row(apply_fire(stored, expected_next, len(jobs), next_fire_at, missed,
                                                  coalesced, at)))
            return True, any(job.state == JobState.QUEUED for job in jobs)

        fired, ready = self._schedule_write(txn)
        if ready:
            self.bell.ring()
        return bool(fired)

    def set_schedule_state(self, schedule_id: str, state: ScheduleState | Any) -> Schedule | None:
        def txn(conn: sqlite3.Connection) -> Schedule | None:
            stored = self._get_in(conn, schedule_id)
            if stored is None:
                return None
            stored.state = ScheduleState(state)
            stored.updated_at = now()
            conn.execute(_UPSERT, _row(stored))
            return stored

        result: Schedule | None = self._schedule_write(txn)
        return result

    def purge_schedules(self, *, states: Iterable[ScheduleState] | None = None, older_than: float | None = None,
                        include_code: bool = False) -> int:
        """Delete ended schedules (:func:`~nuvom_support.schedules.purgeable`) in one transaction."""
        wanted = purge_states(states)
        names = sorted(s.value for s in wanted)

        def txn(conn: sqlite3.Connection) -> int:
            rows = conn.execute(f"SELECT id, data FROM schedules WHERE state IN ({','.join('?' * len(names))})",
                                names).fetchall()
            doomed = [(sid,) for sid, data in rows if purgeable(_load(data), wanted, older_than, include_code)]
            conn.executemany("DELETE FROM schedules WHERE id = ?", doomed)
            return len(doomed)

        deleted: int = self._schedule_write(txn)
        return deleted
