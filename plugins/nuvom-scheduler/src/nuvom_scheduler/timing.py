"""When a schedule fires: cron in an IANA time zone, intervals, misfires.

Pure functions of the schedule and a time, so every scheduler process
computes the same answer and tests can inject any clock.

Cron is evaluated on the zone's wall clock (the ``cronsim`` parser walks
naive local times) and each local time is then placed on the timeline:

- a local time that does not exist (skipped by a DST gap, e.g. 02:30 on the
  night the clocks go from 02:00 to 03:00) fires at the first instant after
  the gap (03:00 new time); several skipped times fire once there;
- a local time that exists twice (the repeated hour when clocks go back)
  fires once, at its first occurrence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from nuvom_kernel.schedules import Schedule

#: Cron candidates examined for one answer before giving up (a DST edge or a
#: far-behind schedule needs a few; an expression that never matches, like
#: ``0 0 30 2 *``, is refused by the parser already).
MAX_STEPS = 10_000


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def display_zone(name: str) -> ZoneInfo:
    """``name``'s zone for showing times; UTC if this host lacks it (listing must not fail)."""
    try:
        return zone(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        return zone("UTC")


def check_cron(expression: str) -> None:
    """``ValueError`` naming the problem if ``expression`` is not a valid cron expression."""
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}; use five fields: "
                         "minute hour day-of-month month day-of-week, e.g. '0 0 * * *'") from None


def to_instant(local: datetime, tz: ZoneInfo) -> float:
    """The POSIX time of the naive wall time ``local`` in ``tz`` (rules in the module docstring)."""
    first = local.replace(tzinfo=tz, fold=0)
    back = first.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)
    if back == local:
        return first.timestamp()  # exists (the first of two, if repeated)
    # in a gap: the first instant after it is where the clock jumped to
    before = local.replace(tzinfo=tz, fold=1).timestamp()  # the time as if the old offset held
    after = first.timestamp()
    lo, hi = math.floor(min(before, after)), math.ceil(max(before, after))
    # the transition lies in (lo, hi]: the first whole second with the new offset (tz rules change on seconds)
    new_offset = datetime.fromtimestamp(hi, tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == new_offset:
            hi = mid
        else:
            lo = mid
    return float(hi)


def next_cron(expression: str, zone_name: str, after: float) -> float | None:
    """The first occurrence strictly after ``after``."""
    tz = zone(zone_name)
    local = datetime.fromtimestamp(after, tz).replace(tzinfo=None, microsecond=0)
    # start a little earlier: after a gap, a skipped wall time before the jump may be next
    start = local - timedelta(hours=3)
    try:
        it = CronSim(expression, start)
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
    for _ in range(MAX_STEPS):
        try:
            candidate = next(it)
        except StopIteration:
            return None
        instant = to_instant(candidate, tz)
        if instant > after:
            return instant
    return None


def next_fire(schedule: Schedule, after: float) -> float | None:
    """The first occurrence of ``schedule`` strictly after ``after``; ``None`` if none."""
    if schedule.kind == "at":
        return schedule.at if schedule.at is not None and schedule.at > after else None
    if schedule.kind == "interval":
        step = float(schedule.interval_secs or 0)
        anchor = schedule.anchor if schedule.anchor is not None else schedule.created_at + step
        if step <= 0:
            raise ValueError(f"schedule {schedule.id}: interval_secs must be > 0")
        if after < anchor:
            return anchor
        k = math.floor((after - anchor) / step) + 1
        candidate = anchor + k * step
        while candidate <= after:  # float rounding
            k += 1
            candidate = anchor + k * step
        return candidate
    if schedule.kind == "cron":
        if not schedule.cron:
            raise ValueError(f"schedule {schedule.id}: a cron schedule without an expression")
        return next_cron(schedule.cron, schedule.timezone, after)
    raise ValueError(f"schedule {schedule.id}: unknown kind {schedule.kind!r}")


@dataclass
class Defaults:
    """What a schedule that sets no policy of its own gets."""

    misfire_grace_secs: float = 60.0
    coalesce: str = "latest"
    catch_up_limit: int = 100


@dataclass
class Plan:
    """What one fire does: enqueue jobs for ``fire_times``, then move to ``next_fire_at``."""

    fire_times: list[float] = field(default_factory=list)
    next_fire_at: float | None = None
    missed: int = 0
    coalesced: int = 0


NextFire = Callable[[Schedule, float], "float | None"]


def plan_fire(schedule: Schedule, at: float, defaults: Defaults, timing: NextFire | None = None) -> Plan:
    """Which due occurrences of ``schedule`` fire at time ``at``.

    Occurrences from ``schedule.next_fire_at`` up to ``at`` are due.  One
    later than its grace (``at - t > misfire_grace_secs``) is *missed*:
    skipped and counted.  Of the others, ``coalesce`` picks the ``latest``
    or the ``earliest`` (the rest are counted as coalesced) or ``all``, at
    most ``catch_up_limit`` (the latest ones; older ones count as missed).
    ``timing`` is :func:`next_fire` unless given (the loop passes the
    ``nuvom_schedule_next_fire`` hook, so a plugin may define its own timing).
    """
    assert schedule.next_fire_at is not None
    step = next_fire if timing is None else timing
    grace = defaults.misfire_grace_secs if schedule.misfire_grace_secs is None else schedule.misfire_grace_secs
    coalesce = schedule.coalesce or defaults.coalesce
    limit = schedule.catch_up_limit or defaults.catch_up_limit
    plan = Plan()
    start: float = schedule.next_fire_at
    t: float | None = start
    cutoff = at - grace
    if start < cutoff:
        # jump over what is past its grace without walking every occurrence of a long outage
        first_in_grace = step(schedule, math.nextafter(cutoff, -math.inf))
        plan.missed = _count_between(schedule, start, first_in_grace, cutoff, step)
        t = first_in_grace
    in_grace: list[float] = []
    while t is not None and t <= at:
        in_grace.append(t)
        if len(in_grace) > limit:
            in_grace.pop(0)
            plan.missed += 1
        t = step(schedule, t)
    plan.next_fire_at = t
    if in_grace:
        if coalesce == "all":
            plan.fire_times = in_grace
        else:
            plan.fire_times = [in_grace[-1] if coalesce == "latest" else in_grace[0]]
            plan.coalesced = len(in_grace) - 1
    return plan


def _count_between(schedule: Schedule, start: float, stop: float | None, cutoff: float, step: NextFire) -> int:
    """How many occurrences lie in [start, cutoff) (exact for intervals; walked up to a bound for cron)."""
    if schedule.kind == "interval" and schedule.interval_secs:
        end = cutoff if stop is None else min(stop, cutoff)
        return max(1, math.ceil((end - start) / schedule.interval_secs))
    count = 0
    t: float | None = start
    while t is not None and t < cutoff and count < MAX_STEPS:
        count += 1
        t = step(schedule, t)
    return count
