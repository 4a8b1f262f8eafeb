"""Schedules: the stored record, and the rules every schedule store shares.

A schedule says which task to run with which arguments, and when: once
(``at``), every ``interval_secs`` seconds, or by a ``cron`` expression in an
IANA time zone.  It is stored by the backend's
:class:`~nuvom_kernel.contracts.ScheduleStore` role; a scheduler loop (the
``nuvom-scheduler`` plugin) reads the due ones and *fires* each occurrence:
one atomic store operation enqueues the occurrence's job, whose id is derived
from (schedule id, fire time), and advances the schedule.  So any number of
schedulers, racing, fire each occurrence once.

The kernel only holds the record and the store protocol; the time arithmetic
(cron, time zones, misfires) lives in the plugin, reached through the
``nuvom_schedule_next_fire`` hook.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nuvom_kernel.models import ID_PATTERN, now, validate_id

ScheduleKind = Literal["at", "interval", "cron"]
Coalesce = Literal["latest", "earliest", "all"]
COALESCE_POLICIES: tuple[str, ...] = ("latest", "earliest", "all")


class ScheduleState(str, Enum):
    """``active`` fires; ``paused`` keeps its place and fires nothing;
    ``done`` (a one-off that fired) and ``cancelled`` never fire again."""

    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


#: The fields that define *what* and *when*; a code-declared schedule whose
#: definition changed is updated in place (see :func:`merge_schedule`).
DEFINITION_FIELDS = (
    "task", "args", "kwargs", "kind", "at", "interval_secs", "cron", "timezone", "misfire_grace_secs",
    "coalesce", "catch_up_limit", "jitter_secs", "options", "plugin_options",
)


class Schedule(BaseModel):
    """One stored schedule.  Times are POSIX timestamps (UTC)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    task: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    kind: ScheduleKind
    #: ``kind == "at"``: the one fire time
    at: float | None = None
    #: ``kind == "interval"``: seconds between fires, counted from ``anchor``
    interval_secs: float | None = None
    #: ``kind == "cron"``: five fields, evaluated in ``timezone``
    cron: str | None = None
    timezone: str = "UTC"
    #: the first fire time of an interval schedule; occurrences are anchor + k * interval
    anchor: float | None = None
    state: ScheduleState = ScheduleState.ACTIVE
    #: the next occurrence to fire (``None`` once a schedule has no more)
    next_fire_at: float | None = None
    #: how late an occurrence may still fire; ``None``: the scheduler's default
    misfire_grace_secs: float | None = None
    #: several due occurrences fire as one job (``latest``/``earliest``) or each (``all``); ``None``: default
    coalesce: Coalesce | None = None
    #: at most this many jobs for one catch-up (``coalesce="all"``); ``None``: default
    catch_up_limit: int | None = None
    #: each job's eta is its fire time plus a random 0..jitter_secs
    jitter_secs: float = 0.0
    #: the task options copied onto every job (queue, priority, retries, timeout ...)
    options: dict[str, Any] = Field(default_factory=dict)
    #: options declared by plugins, copied to ``job.options``
    plugin_options: dict[str, Any] = Field(default_factory=dict)
    #: ``api`` (``task.schedule()``, the SDK) or ``code`` (``@task(cron=...)``)
    origin: Literal["api", "code"] = "api"
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    last_fire_at: float | None = None
    #: jobs enqueued so far
    fire_count: int = 0
    #: occurrences skipped because they were later than their grace period
    missed_count: int = 0
    #: occurrences merged into another one's job (``coalesce`` latest/earliest)
    coalesced_count: int = 0

    def definition(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in DEFINITION_FIELDS}

    def copy_(self) -> Schedule:
        return self.model_copy(deep=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        return cls.model_validate(data)


def new_schedule_id(task: str) -> str:
    """A fresh id: the task name when it is a safe id prefix, then random hex."""
    import uuid

    stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in task)[:30].strip("-_.") or "schedule"
    candidate = f"{stem}-{uuid.uuid4().hex[:12]}"
    return candidate if ID_PATTERN.match(candidate) else f"schedule-{uuid.uuid4().hex[:12]}"


def periodic_schedule_id(task: str) -> str:
    """The id of the schedule a ``@task(cron=...)``/``interval=`` declares: stable across processes."""
    candidate = f"periodic.{task}"
    if ID_PATTERN.match(candidate):
        return candidate
    return "periodic." + hashlib.blake2b(task.encode(), digest_size=12).hexdigest()


def fire_job_id(schedule_id: str, fire_at: float) -> str:
    """The id of the job for the occurrence of ``schedule_id`` at ``fire_at``.

    The same on every scheduler, so a second enqueue of one occurrence is the
    same job (backends keep one job per id) even if a store's fire check were
    bypassed.  Readable (``<schedule>.<ms in base 36>``) when it fits in 64
    characters, else hashed.
    """
    ms = round(fire_at * 1000)
    readable = f"{schedule_id}.{_base36(ms)}"
    if len(readable) <= 64:
        return readable
    digest = hashlib.blake2b(f"{schedule_id}@{ms}".encode(), digest_size=16).hexdigest()
    return f"s{digest}"


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    sign = "-" if value < 0 else ""
    value = abs(value)
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return sign + out


def merge_schedule(stored: Schedule, new: Schedule) -> Schedule | None:
    """What ``add_schedule(new, replace=True)`` stores when ``stored`` exists:
    ``None`` if the definition is unchanged (nothing to write); else the stored
    schedule with the new definition and next fire time, keeping its state
    (a paused schedule stays paused), counters and creation time."""
    if stored.definition() == new.definition():
        return None
    merged = new.copy_()
    merged.created_at, merged.last_fire_at = stored.created_at, stored.last_fire_at
    merged.fire_count, merged.missed_count = stored.fire_count, stored.missed_count
    merged.coalesced_count = stored.coalesced_count
    if stored.state in (ScheduleState.PAUSED, ScheduleState.CANCELLED):
        merged.state = stored.state
    merged.updated_at = now()
    return merged


def apply_fire(schedule: Schedule, fired_at: float, fired: int, next_fire_at: float | None,
               missed: int = 0, coalesced: int = 0, at: float | None = None) -> Schedule:
    """Advance ``schedule`` after a fire (every store applies it the same way)."""
    schedule.next_fire_at = next_fire_at
    schedule.fire_count += fired
    schedule.missed_count += missed
    schedule.coalesced_count += coalesced
    if fired:
        schedule.last_fire_at = fired_at
    if next_fire_at is None and schedule.state == ScheduleState.ACTIVE:
        schedule.state = ScheduleState.DONE
    schedule.updated_at = now() if at is None else at
    return schedule


def can_fire(schedule: Schedule | None, expected_next: float) -> bool:
    """The fire check: the schedule is active and still at ``expected_next``."""
    return (schedule is not None and schedule.state == ScheduleState.ACTIVE
            and schedule.next_fire_at is not None and schedule.next_fire_at == expected_next)


#: The states a schedule never leaves by firing; only these are ever purged.
ENDED_STATES = frozenset({ScheduleState.DONE, ScheduleState.CANCELLED})


def purge_states(states: Any = None) -> frozenset[ScheduleState]:
    """The states ``purge_schedules(states=...)`` deletes: ``done`` and
    ``cancelled`` (default both); ``ValueError`` naming any other."""
    if states is None:
        return ENDED_STATES
    wanted = {ScheduleState(s) for s in ([states] if isinstance(states, (str, ScheduleState)) else states)}
    live = sorted(s.value for s in wanted - ENDED_STATES)
    if live:
        raise ValueError(f"purging schedules never deletes {', '.join(live)} ones: cancel them first, "
                         "or purge done or cancelled schedules")
    return frozenset(wanted)


def purgeable(schedule: Schedule, states: frozenset[ScheduleState], older_than: float | None,
              include_code: bool) -> bool:
    """The purge rule every store applies: an ended schedule in ``states`` that
    ended (``updated_at``) before ``older_than``; a code-declared one (``@task(cron=...)``)
    only with ``include_code``, since its record keeps a cancelled periodic task from
    being stored again by the next scheduler."""
    return (schedule.state in states and schedule.state in ENDED_STATES
            and (older_than is None or schedule.updated_at < older_than)
            and (include_code or schedule.origin != "code"))


def check_schedule_id(schedule_id: str) -> str:
    return validate_id(schedule_id, "schedule id")
