"""``task.schedule(...)``: building and storing a schedule (the scheduler
plugin implements ``nuvom_schedule_task`` with it).

Nuvom 0.11's call works as it was written: exactly one of ``at=`` (a
datetime; naive means UTC, with a warning), ``in_=`` (a timedelta),
``interval=`` (seconds, first run one interval from now) or ``cron=`` (five
fields, in ``timezone_name``).  It returns a :class:`ScheduleHandle` with an
``id``.  Firing is the scheduler's work (``nuvom runscheduler``, or the loop
every worker runs); see docs/schedules.md.
"""

from __future__ import annotations

import math
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from nuvom_kernel.models import ID_PATTERN, now
from nuvom_kernel.schedules import COALESCE_POLICIES, Schedule, ScheduleState
from nuvom_support.schedules import check_schedule_id, get_schedule, schedule_store, set_state

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.task import Task

__all__ = ["ScheduleHandle", "add_schedule", "build_schedule", "check_zone"]

#: ``.options(...)`` keys that only ``.schedule()`` accepts.
SCHEDULE_CALL_OPTIONS = ("schedule_id", "misfire_grace_secs", "coalesce", "catch_up_limit", "schedule_jitter_secs")
#: Task options copied onto every fired job (JSON values only; hooks stay with the task).
_COPIED = ("retries", "retry_delay_secs", "backoff", "backoff_max_secs", "jitter", "timeout_secs",
           "timeout_policy", "store_result", "priority", "queue", "tags", "executor", "max_lease_expiries")


def new_schedule_id(task: str) -> str:
    """A fresh id: the task name when it is a safe id prefix, then random hex."""
    stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in task)[:30].strip("-_.") or "schedule"
    candidate = f"{stem}-{uuid.uuid4().hex[:12]}"
    return candidate if ID_PATTERN.match(candidate) else f"schedule-{uuid.uuid4().hex[:12]}"


def check_zone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name:
        raise ValueError(f"timezone_name={name!r} is invalid: use an IANA zone name such as 'Europe/Paris' or 'UTC'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA zone name such as 'America/New_York' or 'UTC' "
            "(on Windows, `pip install tzdata` provides the zone database)") from None
    return name


def _timestamp(value: datetime | float | int, what: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            warnings.warn(f"naive datetime passed as {what}; treating it as UTC", stacklevel=5)
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise TypeError(f"{what} must be a datetime or a POSIX timestamp, not {type(value).__name__}")


def _policy(options: dict[str, Any]) -> dict[str, Any]:
    grace = options.get("misfire_grace_secs")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace < math.inf):
        raise ValueError(f"misfire_grace_secs={grace!r} is invalid: use a number of seconds >= 0")
    coalesce = options.get("coalesce")
    if coalesce is not None and coalesce not in COALESCE_POLICIES:
        raise ValueError(f"coalesce={coalesce!r} is invalid: use 'latest', 'earliest' or 'all'")
    limit = options.get("catch_up_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"catch_up_limit={limit!r} is invalid: use an integer >= 1")
    jitter = options.get("schedule_jitter_secs") or 0.0
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < math.inf:
        raise ValueError(f"schedule_jitter_secs={jitter!r} is invalid: use a number of seconds >= 0")
    return {"misfire_grace_secs": None if grace is None else float(grace), "coalesce": coalesce,
            "catch_up_limit": limit, "jitter_secs": float(jitter)}


def build_schedule(
    task: Task[Any],
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    at: datetime | float | None = None,
    in_: timedelta | float | None = None,
    interval: float | timedelta | None = None,
    cron: str | None = None,
    timezone_name: str | None = "UTC",
    overrides: dict[str, Any] | None = None,
    origin: str = "api",
    schedule_id: str | None = None,
) -> Schedule:
    """The schedule for one ``.schedule()`` call (its first fire time not yet computed for cron)."""
    given = [name for name, value in (("at", at), ("in_", in_), ("interval", interval), ("cron", cron))
             if value is not None]
    if len(given) != 1:
        raise ValueError("pass exactly one of at=, in_=, interval= or cron= to schedule() "
                         f"(got {', '.join(given) if given else 'none'})")
    overrides = dict(overrides or {})
    for key in ("eta", "countdown", "job_id"):
        if overrides.get(key) is not None:
            raise ValueError(f"{key}= does not apply to schedule(): the schedule decides when each job runs")
    zone = check_zone(timezone_name or "UTC")
    created = now()
    fields: dict[str, Any] = {}
    if at is not None or in_ is not None:
        if at is not None:
            when = _timestamp(at, "at")
        else:
            delta = in_.total_seconds() if isinstance(in_, timedelta) else in_
            if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 <= delta < math.inf:
                raise ValueError(f"in_={in_!r} is invalid: use a timedelta (or seconds) >= 0")
            when = created + float(delta)
        fields = {"kind": "at", "at": when, "next_fire_at": max(when, created)}
    elif interval is not None:
        secs = interval.total_seconds() if isinstance(interval, timedelta) else interval
        if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not 0 < secs < math.inf:
            raise ValueError(f"interval={interval!r} is invalid: use a number of seconds > 0 (or a timedelta)")
        fields = {"kind": "interval", "interval_secs": float(secs), "anchor": created + float(secs),
                  "next_fire_at": created + float(secs)}
    else:
        if not isinstance(cron, str) or not cron.strip():
            raise ValueError(f"cron={cron!r} is invalid: use a five-field cron expression such as '0 0 * * *'")
        fields = {"kind": "cron", "cron": " ".join(cron.split())}
    sid = overrides.pop("schedule_id", None) or schedule_id
    opts: dict[str, Any] = {k: getattr(task, k) for k in _COPIED if getattr(task, k, None) is not None}
    opts.update({k: v for k, v in overrides.items() if k in _COPIED})
    if "timeout_secs" not in overrides and task.timeout_secs is None:
        opts.pop("timeout_secs", None)
    plugin_options = dict(task.plugin_options)
    for key in ("cron", "interval", "timezone"):  # the declaration of a periodic task, not a job option
        plugin_options.pop(key, None)
    return Schedule(
        id=check_schedule_id(sid) if sid else new_schedule_id(task.name),
        task=task.name, args=list(args), kwargs=dict(kwargs), timezone=zone, options=opts,
        plugin_options=plugin_options, origin=origin, created_at=created, updated_at=created,  # type: ignore[arg-type]
        **fields, **_policy(overrides),
    )


def add_schedule(app: Nuvom, schedule: Schedule, *, replace: bool = False) -> Schedule:
    """Compute the first fire time of a cron schedule, check the payload, store it."""
    app.check_payload({"args": schedule.args, "kwargs": schedule.kwargs}, f"arguments of schedule {schedule.id!r}")
    # always asked: without a scheduler plugin nothing would ever fire the schedule (CapabilityError)
    first = app.plugins.schedule_next_fire(schedule, schedule.created_at)
    if schedule.kind == "cron":
        if first is None:
            raise ValueError(f"cron={schedule.cron!r} never fires: check the day and month fields")
        schedule.next_fire_at = first
    return schedule_store(app).add_schedule(schedule, replace=replace)


class ScheduleHandle:
    """What ``task.schedule()`` returns: the schedule's ``id`` and ways to manage it."""

    def __init__(self, schedule: Schedule, app: Nuvom) -> None:
        self.id = schedule.id
        self.app = app
        self._schedule = schedule

    def __repr__(self) -> str:
        return f"<ScheduleHandle {self.id} {self._schedule.kind}>"

    @property
    def next_fire_at(self) -> float | None:
        return self._schedule.next_fire_at

    def schedule(self) -> Schedule:
        """The stored schedule, read again."""
        self._schedule = get_schedule(self.app, self.id)
        return self._schedule

    def pause(self) -> Schedule:
        return set_state(self.app, self.id, ScheduleState.PAUSED)

    def resume(self) -> Schedule:
        return set_state(self.app, self.id, ScheduleState.ACTIVE)

    def cancel(self) -> Schedule:
        return set_state(self.app, self.id, ScheduleState.CANCELLED)
