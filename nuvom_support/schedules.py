"""Reading a stored schedule and changing its state, the same way for the SDK,
the CLI, the dashboard and ``ScheduleHandle``: an unknown id raises
``ScheduleNotFoundError``, a schedule that ended cannot be resumed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_kernel.errors import InvalidStateError, ScheduleNotFoundError
from nuvom_kernel.schedules import Schedule, ScheduleState, check_schedule_id

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.contracts import ScheduleStore

__all__ = ["ScheduleNotFoundError", "get_schedule", "schedule_store", "set_state"]


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
