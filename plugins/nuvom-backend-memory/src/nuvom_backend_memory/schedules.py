"""The schedule store role of the memory backend: a dict under the backend's lock.

A fire holds the backend's lock while it checks the schedule, enqueues the
occurrence's jobs and advances the schedule, so racing schedulers (threads of
one process: the memory backend has no other kind) fire each occurrence once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from nuvom_kernel.models import Job, now
from nuvom_kernel.schedules import Schedule, ScheduleState
from nuvom_support.schedules import (
    apply_fire,
    can_fire,
    check_schedule_id,
    merge_schedule,
    purge_states,
    purgeable,
)


class MemorySchedules:
    """Mixed into :class:`~nuvom_backend_memory.backend.MemoryBackend`."""

    _lock: threading.RLock
    enqueue_many: Any  # the backend's

    @property
    def _schedules(self) -> dict[str, Schedule]:
        table: dict[str, Schedule] | None = self.__dict__.get("_schedule_table")
        if table is None:
            table = self.__dict__.setdefault("_schedule_table", {})
        return table

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        check_schedule_id(schedule.id)
        with self._lock:
            stored = self._schedules.get(schedule.id)
            if stored is None:
                stored = self._schedules[schedule.id] = schedule.copy_()
            elif replace:
                merged = merge_schedule(stored, schedule)
                if merged is not None:
                    stored = self._schedules[schedule.id] = merged
            return stored.copy_()

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        with self._lock:
            found = self._schedules.get(schedule_id)
            return None if found is None else found.copy_()

    def list_schedules(self) -> list[Schedule]:
        with self._lock:
            return [self._schedules[k].copy_() for k in sorted(self._schedules)]

    def due_schedules(self, at: float, limit: int) -> list[Schedule]:
        with self._lock:
            due = [s for s in self._schedules.values()
                   if s.state == ScheduleState.ACTIVE and s.next_fire_at is not None and s.next_fire_at <= at]
            due.sort(key=lambda s: (s.next_fire_at or 0.0, s.id))
            return [s.copy_() for s in due[:max(0, limit)]]

    def fire_schedule(self, schedule_id: str, expected_next: float, jobs: Sequence[Job],
                      next_fire_at: float | None, *, missed: int = 0, coalesced: int = 0) -> bool:
        with self._lock:
            stored = self._schedules.get(schedule_id)
            if stored is None or not can_fire(stored, expected_next):
                return False
            if jobs:
                self.enqueue_many(jobs)
            apply_fire(stored, expected_next, len(jobs), next_fire_at, missed, coalesced)
            return True

    def set_schedule_state(self, schedule_id: str, state: ScheduleState | Any) -> Schedule | None:
        with self._lock:
            stored = self._schedules.get(schedule_id)
            if stored is None:
                return None
            stored.state = ScheduleState(state)
            stored.updated_at = now()
            return stored.copy_()

    def purge_schedules(self, *, states: Iterable[ScheduleState] | None = None, older_than: float | None = None,
                        include_code: bool = False) -> int:
        wanted = purge_states(states)
        with self._lock:
            doomed = [k for k, s in self._schedules.items() if purgeable(s, wanted, older_than, include_code)]
            for key in doomed:
                del self._schedules[key]
            return len(doomed)
