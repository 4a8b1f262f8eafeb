"""Schedules: the stored record, and the id of an occurrence's job.

A schedule says which task to run with which arguments, and when: once
(``at``), every ``interval_secs`` seconds, or by a ``cron`` expression in an
IANA time zone.  It is stored by the backend's
:class:`~nuvom_kernel.contracts.ScheduleStore` role; a scheduler loop (the
``nuvom-scheduler`` plugin) reads the due ones and *fires* each occurrence:
one atomic store operation enqueues the occurrence's job, whose id is derived
from (schedule id, fire time), and advances the schedule.  So any number of
schedulers, racing, fire each occurrence once.

The kernel only holds the record and the store protocol; the rules every
schedule store applies (merge, fire check, purge) are in
:mod:`nuvom_support.schedules`, and the time arithmetic (cron, time zones,
misfires) lives in the scheduler plugin, reached through the
``nuvom_schedule_next_fire`` hook.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nuvom_kernel.models import now

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
#: definition changed is updated in place (``nuvom_support.schedules.merge_schedule``).
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
