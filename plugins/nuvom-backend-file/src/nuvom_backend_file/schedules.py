"""The schedule store role of the file backend: one JSON file per schedule.

```
schedules/<id>.json        the schedule (written to tmp/, then os.replace)
schedules/locks/<id>.lock  "this schedule is being changed" (exclusive create)
```

Every change, a fire included, holds the schedule's lock, a file created
with ``O_CREAT | O_EXCL`` (atomic on every local file system, Windows too):
read the schedule, check it is active and still at the expected fire time,
enqueue the occurrence's jobs, write the advanced schedule, release.  The
jobs' ids are derived from (schedule id, fire time) and the backend keeps one
job per id (``ids/``), so a scheduler killed between the enqueue and the
write leaves nothing twice: once its lock is stale (``lock_stale_secs``),
the next scheduler repeats the fire, the enqueue adds nothing and the
schedule advances.  That stale wait delays the occurrence; the misfire grace
should be longer than ``lock_stale_secs``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nuvom_backend_file.layout import make_private_dir
from nuvom_backend_file.locks import LockTable
from nuvom_backend_file.records import retrying, write_file
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

log = logging.getLogger("nuvom.backend.file")


class FileSchedules:
    """Mixed into :class:`~nuvom_backend_file.backend.FileBackend`."""

    root: Path
    locks: LockTable
    fsync: bool
    enqueue_many: Any  # the backend's
    _check_open: Any

    @property
    def _schedule_dir(self) -> Path:
        found: Path | None = self.__dict__.get("_schedule_dir_path")
        if found is None:
            found = self.root / "schedules"
            make_private_dir(found / "locks")
            self.__dict__["_schedule_locks"] = LockTable(found / "locks", stale_secs=self.locks.stale_secs,
                                                         timeout_secs=self.locks.timeout_secs)
            self.__dict__["_schedule_dir_path"] = found
        return found

    @property
    def _schedule_locks(self) -> LockTable:
        _ = self._schedule_dir
        table: LockTable = self.__dict__["_schedule_locks"]
        return table

    def _schedule_path(self, schedule_id: str) -> Path:
        return self._schedule_dir / f"{schedule_id}.json"

    def _read_schedule(self, path: Path) -> Schedule | None:
        try:
            data = retrying(path.read_bytes)
        except FileNotFoundError:
            return None
        try:
            return Schedule.from_dict(json.loads(data))
        except ValueError as exc:  # never torn (written by os.replace); damaged by hand or by the disk
            log.error("schedule file %s cannot be read (%s); it is skipped until it is fixed or deleted", path, exc)
            return None

    def _write_schedule(self, schedule: Schedule) -> None:
        data = json.dumps(schedule.to_dict(), separators=(",", ":")).encode()
        write_file(self.root / "tmp", self._schedule_path(schedule.id), data, fsync=self.fsync)

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        self._check_open()
        check_schedule_id(schedule.id)
        with self._schedule_locks.hold(schedule.id):
            stored = self._read_schedule(self._schedule_path(schedule.id))
            if stored is None:
                self._write_schedule(schedule)
                return schedule.copy_()
            if replace:
                merged = merge_schedule(stored, schedule)
                if merged is not None:
                    self._write_schedule(merged)
                    return merged
            return stored

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        check_schedule_id(schedule_id)
        return self._read_schedule(self._schedule_path(schedule_id))

    def list_schedules(self) -> list[Schedule]:
        self._check_open()
        with os.scandir(self._schedule_dir) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".json"))
        found = (self._read_schedule(self._schedule_dir / name) for name in names)
        return [s for s in found if s is not None]

    def due_schedules(self, at: float, limit: int) -> list[Schedule]:
        due = [s for s in self.list_schedules()
               if s.state == ScheduleState.ACTIVE and s.next_fire_at is not None and s.next_fire_at <= at]
        due.sort(key=lambda s: (s.next_fire_at or 0.0, s.id))
        return due[:max(0, limit)]

    def fire_schedule(self, schedule_id: str, expected_next: float, jobs: Sequence[Job],
                      next_fire_at: float | None, *, missed: int = 0, coalesced: int = 0) -> bool:
        self._check_open()
        with self._schedule_locks.hold(schedule_id):
            stored = self._read_schedule(self._schedule_path(schedule_id))
            if stored is None or not can_fire(stored, expected_next):
                return False
            if jobs:
                self.enqueue_many([job.snapshot() for job in jobs])
            self._write_schedule(apply_fire(stored, expected_next, len(jobs), next_fire_at, missed, coalesced))
            return True

    def set_schedule_state(self, schedule_id: str, state: ScheduleState | Any) -> Schedule | None:
        self._check_open()
        check_schedule_id(schedule_id)
        with self._schedule_locks.hold(schedule_id):
            stored = self._read_schedule(self._schedule_path(schedule_id))
            if stored is None:
                return None
            stored.state = ScheduleState(state)
            stored.updated_at = now()
            self._write_schedule(stored)
            return stored

    def purge_schedules(self, *, states: Iterable[ScheduleState] | None = None, older_than: float | None = None,
                        include_code: bool = False) -> int:
        """Delete ended schedules (:func:`~nuvom_support.schedules.purgeable`), each
        under its lock (checked again there), so a racing change is never lost."""
        wanted = purge_states(states)
        deleted = 0
        for schedule in self.list_schedules():
            if not purgeable(schedule, wanted, older_than, include_code):
                continue
            with self._schedule_locks.hold(schedule.id):
                path = self._schedule_path(schedule.id)
                stored = self._read_schedule(path)
                if stored is not None and purgeable(stored, wanted, older_than, include_code):
                    path.unlink()
                    deleted += 1
        return deleted
