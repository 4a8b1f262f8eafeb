"""The schedule store role of the PostgreSQL backend: the ``schedules`` table
(migration 2).

A fire is one transaction: ``SELECT ... FOR UPDATE`` the schedule *where it is
still active and at the expected fire time* (under READ COMMITTED a racing
fire waits for the row lock, then re-checks that condition against the row
the winner wrote and finds nothing), insert the occurrence's jobs as an
enqueue does (``ON CONFLICT DO NOTHING`` on the job id, which is derived from
schedule and fire time, so a stored id stays one job) and write the advanced
schedule with the same guard.  Any number of schedulers, on any hosts, fire
each occurrence once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from nuvom_backend_postgres.wakeup import SCHEDULES_PAYLOAD
from nuvom_kernel.models import Job, now
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
    from nuvom_backend_postgres.db import Database

_INSERT = "INSERT INTO {s}.schedules (id, state, next_fire_at, data) VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
_UPDATE = "UPDATE {s}.schedules SET state = %s, next_fire_at = %s, data = %s WHERE id = %s"
_GET = "SELECT data FROM {s}.schedules WHERE id = %s"


def _data(schedule: Schedule) -> str:
    return json.dumps(schedule.to_dict(), separators=(",", ":"))


def _load(data: str) -> Schedule:
    return Schedule.from_dict(json.loads(data))


class PostgresSchedules:
    """Mixed into :class:`~nuvom_backend_postgres.backend.PostgresBackend`."""

    db: Database
    doorbell: Any
    schedule_bell: Any
    wakeups: str
    channel: str
    q: Callable[[str], str]
    _run: Callable[..., Any]
    open: Callable[[], None]
    _enqueue_in: Callable[..., tuple[list[Job], bool]]

    def _schedules_changed(self, conn: psycopg.Connection[Any]) -> None:
        """Inside the writing transaction: tell every scheduler loop (delivered at commit)."""
        if self.wakeups == "notify":
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, SCHEDULES_PAYLOAD))

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        check_schedule_id(schedule.id)

        def txn(conn: psycopg.Connection[Any]) -> tuple[Schedule, bool]:
            with conn.transaction():
                inserted = conn.execute(self.q(_INSERT), (schedule.id, schedule.state.value, schedule.next_fire_at,
                                                          _data(schedule))).rowcount
                if inserted:
                    self._schedules_changed(conn)
                    return schedule.copy_(), True
                row = conn.execute(self.q(_GET + " FOR UPDATE"), (schedule.id,)).fetchone()
                if row is None:  # deleted between the insert and the read (a purge): add it again
                    return txn(conn)
                stored = _load(row[0])
                if replace:
                    merged = merge_schedule(stored, schedule)
                    if merged is not None:
                        conn.execute(self.q(_UPDATE), (merged.state.value, merged.next_fire_at, _data(merged),
                                                       merged.id))
                        self._schedules_changed(conn)
                        return merged, True
                return stored, False

        result, changed = self._run(txn)
        if changed:
            self.schedule_bell.ring()
        return result

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        row = self._run(lambda conn: conn.execute(self.q(_GET), (schedule_id,)).fetchone())
        return None if row is None else _load(row[0])

    def list_schedules(self) -> list[Schedule]:
        rows = self._run(lambda conn: conn.execute(self.q("SELECT data FROM {s}.schedules ORDER BY id")).fetchall())
        return [_load(r[0]) for r in rows]

    def due_schedules(self, at: float, limit: int) -> list[Schedule]:
        rows = self._run(lambda conn: conn.execute(self.q(
            "SELECT data FROM {s}.schedules WHERE state = 'active' AND next_fire_at <= %s "
            "ORDER BY next_fire_at, id LIMIT %s"), (at, max(0, int(limit)))).fetchall())
        return [_load(r[0]) for r in rows]

    def fire_schedule(self, schedule_id: str, expected_next: float, jobs: Sequence[Job],
                      next_fire_at: float | None, *, missed: int = 0, coalesced: int = 0) -> bool:
        jobs = list(jobs)
        if jobs:
            self.open()  # measures the server clock the jobs' times are stamped with
            at = self.db.now()
            for job in jobs:
                enqueue_update(job, at)

        def txn(conn: psycopg.Connection[Any]) -> tuple[bool, bool]:
            with conn.transaction():
                row = conn.execute(self.q(
                    "SELECT data FROM {s}.schedules WHERE id = %s AND state = 'active' AND next_fire_at = %s "
                    "FOR UPDATE"), (schedule_id, float(expected_next))).fetchone()
                stored = None if row is None else _load(row[0])
                if stored is None or not can_fire(stored, float(expected_next)):
                    return False, False
                ready = self._enqueue_in(conn, jobs)[1] if jobs else False
                advanced = apply_fire(stored, float(expected_next), len(jobs), next_fire_at, missed, coalesced, now())
                written = conn.execute(self.q(_UPDATE + " AND state = 'active' AND next_fire_at = %s"), (
                    advanced.state.value, advanced.next_fire_at, _data(advanced), schedule_id,
                    float(expected_next))).rowcount
                if written != 1:  # the row lock makes this impossible; never half a fire
                    raise psycopg.errors.SerializationFailure(f"schedule {schedule_id} changed under its row lock")
                return True, ready

        fired, ready = self._run(txn)
        if ready:
            self.doorbell.ring()
        return bool(fired)

    def set_schedule_state(self, schedule_id: str, state: ScheduleState | Any) -> Schedule | None:
        wanted = ScheduleState(state)

        def txn(conn: psycopg.Connection[Any]) -> Schedule | None:
            with conn.transaction():
                row = conn.execute(self.q(_GET + " FOR UPDATE"), (schedule_id,)).fetchone()
                if row is None:
                    return None
                stored = _load(row[0])
                stored.state = wanted
                stored.updated_at = now()
                conn.execute(self.q(_UPDATE), (stored.state.value, stored.next_fire_at, _data(stored), stored.id))
                self._schedules_changed(conn)
                return stored

        result: Schedule | None = self._run(txn)
        if result is not None:
            self.schedule_bell.ring()
        return result

    def purge_schedules(self, *, states: Iterable[ScheduleState] | None = None, older_than: float | None = None,
                        include_code: bool = False) -> int:
        """Delete ended schedules (:func:`~nuvom_support.schedules.purgeable`) in one transaction."""
        wanted = purge_states(states)

        def txn(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                rows = conn.execute(self.q("SELECT id, data FROM {s}.schedules WHERE state = ANY(%s) FOR UPDATE"),
                                    (sorted(s.value for s in wanted),)).fetchall()
                doomed = [sid for sid, data in rows if purgeable(_load(data), wanted, older_than, include_code)]
                if doomed:
                    conn.execute(self.q("DELETE FROM {s}.schedules WHERE id = ANY(%s)"), (doomed,))
                return len(doomed)

        deleted: int = self._run(txn)
        return deleted
