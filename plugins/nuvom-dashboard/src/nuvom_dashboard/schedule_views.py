"""The schedules pages, read through the SDK's schedule operations only.

``nuvom.sdk.list_schedules`` / ``get_schedule`` read the backend's
``ScheduleStore`` role; pause, resume and cancel are ``nuvom.sdk``'s
``pause_schedule`` / ``resume_schedule`` / ``cancel_schedule``.  A backend
without the role is said so on the page, never an error deep in a request.
Times are shown in each schedule's own zone (a cron schedule's wall clock),
with UTC beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nuvom import sdk
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import CapabilityError, InvalidStateError, NuvomError
from nuvom_kernel.schedules import Schedule, ScheduleState

#: what each state lets an operator do, in the order the buttons appear
ACTIONS: dict[ScheduleState, tuple[str, ...]] = {
    ScheduleState.ACTIVE: ("pause", "cancel"),
    ScheduleState.PAUSED: ("resume", "cancel"),
    ScheduleState.DONE: (),
    ScheduleState.CANCELLED: (),
}
#: upcoming occurrences a schedule page lists
UPCOMING = 5


def zone_of(name: str) -> tuple[tzinfo, bool]:
    """``name``'s zone and True, or UTC and False when this host lacks it
    (a page must show the schedule anyway)."""
    try:
        return ZoneInfo(name), True
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc, False


def local_time(ts: float | None, zone: tzinfo) -> str:
    """``2026-11-30 09:00:00 CET (+01:00)``: the wall clock of ``zone`` with its offset."""
    if ts is None:
        return "—"
    moment = datetime.fromtimestamp(ts, zone)
    offset = moment.strftime("%z")
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") + f" ({offset[:3]}:{offset[3:]})"


def when_text(schedule: Schedule) -> str:
    """How often, in words: ``cron 0 9 * * 1-5``, ``every 30 s``, ``once``."""
    if schedule.kind == "cron":
        return f"cron {schedule.cron}"
    if schedule.kind == "interval":
        return f"every {schedule.interval_secs or 0:g} s"
    return "once"


@dataclass
class ScheduleRow:
    schedule: Schedule
    when: str
    zone_known: bool
    next_local: str
    last_local: str
    actions: tuple[str, ...]


def row(schedule: Schedule) -> ScheduleRow:
    zone, known = zone_of(schedule.timezone)
    return ScheduleRow(schedule, when_text(schedule), known, local_time(schedule.next_fire_at, zone),
                       local_time(schedule.last_fire_at, zone), ACTIONS.get(schedule.state, ()))


def unavailable(app: Nuvom) -> str | None:
    """Why this store cannot show schedules, or ``None`` when it can."""
    try:
        app.schedules  # noqa: B018 - the role, or CapabilityError naming it
    except CapabilityError:
        return (f"The {app.settings.queue_backend} backend stores no schedules (it does not provide the "
                "schedule store role), so there is nothing to show or act on here. Schedules need a backend "
                "that provides it: sqlite, file, memory, postgres or redis.")
    return None


def listing(app: Nuvom) -> dict[str, Any]:
    """Every schedule (the store lists them by id), and how many are in each state."""
    reason = unavailable(app)
    if reason is not None:
        return {"unavailable": reason, "rows": [], "by_state": {}}
    rows = [row(s) for s in sdk.list_schedules(app=app)]
    by_state = {state.value: sum(1 for r in rows if r.schedule.state == state) for state in ScheduleState}
    return {"unavailable": None, "rows": rows, "by_state": by_state}


def upcoming(app: Nuvom, schedule: Schedule, count: int = UPCOMING) -> list[float]:
    """The next ``count`` occurrences from ``next_fire_at`` on, as the scheduler
    computes them (``nuvom_schedule_next_fire``); empty when it cannot say."""
    if schedule.state not in (ScheduleState.ACTIVE, ScheduleState.PAUSED) or schedule.next_fire_at is None:
        return []
    times = [schedule.next_fire_at]
    try:
        while len(times) < count:
            after = app.plugins.schedule_next_fire(schedule, times[-1])
            if after is None or after <= times[-1]:
                break
            times.append(after)
    except (NuvomError, ValueError):  # no scheduler plugin here, or a zone this host lacks
        pass
    return times


def detail(app: Nuvom, schedule_id: str) -> dict[str, Any]:
    """One schedule; ``ScheduleNotFoundError``/``InvalidIdError`` for an unknown or invalid id."""
    schedule = sdk.get_schedule(schedule_id, app=app)
    zone, _ = zone_of(schedule.timezone)
    return {"row": row(schedule), "upcoming": [(local_time(t, zone), t) for t in upcoming(app, schedule)]}


def allowed(app: Nuvom, schedule_id: str, action: str) -> Schedule:
    """The schedule, if ``action`` applies to its state; else ``InvalidStateError`` saying what does."""
    current = sdk.get_schedule(schedule_id, app=app)
    if action not in ACTIONS.get(current.state, ()):
        can = ", ".join(ACTIONS.get(current.state, ())) or "nothing (it never fires again)"
        raise InvalidStateError(f"schedule {current.id} is {current.state}: it cannot be {_past(action)}; "
                                f"allowed: {can}")
    return current


def cancel_question(app: Nuvom, schedule_id: str) -> str:
    current = allowed(app, schedule_id, "cancel")
    return (f"Cancel schedule {current.id} ({current.task}, {when_text(current)})? It never fires again; "
            "this cannot be undone (pause keeps it).")


def change(app: Nuvom, schedule_id: str, action: str) -> str:
    """Pause, resume or cancel through the SDK; the notice that says what was done."""
    operation = {"pause": sdk.pause_schedule, "resume": sdk.resume_schedule, "cancel": sdk.cancel_schedule}[action]
    allowed(app, schedule_id, action)
    done = operation(schedule_id, app=app)
    if action == "cancel":
        return f"schedule {done.id} cancelled: it never fires again"
    if action == "pause":
        return f"schedule {done.id} paused: nothing fires until it is resumed"
    zone, _ = zone_of(done.timezone)
    return f"schedule {done.id} resumed: next fire {local_time(done.next_fire_at, zone)}"


def _past(action: str) -> str:
    return {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
