"""Schedules for stores and tools: the rules every schedule store applies the
same way (merging a changed definition, the fire check, advancing after a
fire, which ended schedules a purge deletes), and reading a stored schedule
and changing its state the same way for the SDK, the CLI, the dashboard and
``ScheduleHandle``: an unknown id raises ``ScheduleNotFoundError``, a schedule
that ended cannot be resumed.  The record itself is
:class:`nuvom_kernel.schedules.Schedule`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuvom_kernel.errors import InvalidStateError, ScheduleNotFoundError
from nuvom_kernel.models import now, validate_id
from nuvom_kernel.schedules import Schedule, ScheduleState

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.contracts import ScheduleStore

__all__ = [
    "ENDED_STATES", "ScheduleNotFoundError", "apply_fire", "can_fire", "check_schedule_id", "get_schedule",
    "merge_schedule", "purge_states", "purgeable", "schedule_store", "set_state",
]


def schedule_store(app: Nuvom) -> ScheduleStore:
    """The backend's schedule store role (``CapabilityError`` naming the fix if it has none)."""
    return app.schedules


def get_schedule(app: Nuvom, schedule_id: str) -> Schedule:
    found = schedule_store(app).get_schedule(check_schedule_id(schedule_id))
    if found is None:
        raise ScheduleNotFoundError(f"no schedule with id {schedule_id!r}; `nuvom schedules list` shows them")
    return found


def set_state(app: Nuvom, schedule_id: str, state: ScheduleState) -> Schedule:
    """Pause, resume or cancel; ``InvalidStateError`` for a schedule that ended."""
    current = get_schedule(app, schedule_id)
    if current.state in (ScheduleState.DONE, ScheduleState.CANCELLED) and current.state != state:
        raise InvalidStateError(f"schedule {schedule_id} is {current.state}; it never fires again "
                                "(create a new one with task.schedule())")
    updated = schedule_store(app).set_schedule_state(current.id, state)
    if updated is None:
        raise ScheduleNotFoundError(f"no schedule with id {schedule_id!r}")
    return updated


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
