"""A loop whose store tells about schedule changes sleeps until the next fire
(at most ``idle_secs``) and wakes when a schedule is added; without such a
store it polls every ``poll`` seconds, as before."""

from __future__ import annotations

import time
from collections.abc import Callable

from nuvom_backend_memory import MemoryBackend
from nuvom_scheduler import SchedulerLoop

from nuvom_kernel.app import Nuvom
from nuvom_kernel.schedules import Schedule, ScheduleState, fire_job_id
from nuvom_kernel.testing.queue_contract import wait_for


class TellingBackend(MemoryBackend):
    """The memory store plus ``subscribe_schedules``: rings on add and state changes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self._told: list[Callable[[], None]] = []

    def subscribe_schedules(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._told.append(callback)
        return lambda: self._told.remove(callback)

    def due_schedules(self, at: float, limit: int) -> list[Schedule]:
        self.reads += 1
        return super().due_schedules(at, limit)

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        stored = super().add_schedule(schedule, replace=replace)
        for callback in list(self._told):
            callback()
        return stored

    def set_schedule_state(self, schedule_id: str, state: ScheduleState) -> Schedule | None:
        stored = super().set_schedule_state(schedule_id, state)
        for callback in list(self._told):
            callback()
        return stored


def _loop(backend: MemoryBackend, **kwargs: float) -> SchedulerLoop:
    app = Nuvom(queue=backend, queue_backend="memory", result_backend="memory")
    return SchedulerLoop(app, periodic=False, **kwargs)  # type: ignore[arg-type]


def test_an_idle_loop_sleeps_and_a_new_schedule_wakes_it() -> None:
    backend = TellingBackend()
    loop = _loop(backend, poll=0.01, idle_secs=3600.0)
    loop.start()
    try:
        wait_for(lambda: backend.reads >= 1, timeout=10)
        time.sleep(0.3)  # thirty polls' worth: an idle loop told of changes reads nothing more
        assert backend.reads == 1
        soon = time.time() + 0.5
        backend.add_schedule(Schedule(id="soon", task="t", kind="at", at=soon, next_fire_at=soon))
        wait_for(lambda: backend.get(fire_job_id("soon", soon)) is not None, timeout=10)
        assert backend.get_schedule("soon").state == ScheduleState.DONE  # type: ignore[union-attr]
        assert backend.reads <= 6  # woken: peek; at the fire time: peek, due read; then a last peek
    finally:
        loop.stop()
    assert backend._told == []  # stop() unsubscribed


def test_a_due_schedule_that_cannot_fire_is_retried_at_the_poll_not_in_a_busy_loop() -> None:
    backend = TellingBackend()
    backend.add_schedule(Schedule(id="broken", task="t", kind="cron", cron="0 0 * * *", timezone="Not/AZone",
                                  next_fire_at=time.time() - 1))
    loop = _loop(backend, poll=0.2, idle_secs=3600.0)
    loop.start()
    try:
        time.sleep(1.0)
    finally:
        loop.stop()
    assert 2 <= backend.reads <= 20  # about three reads per poll of 0.2 s, never a busy loop


def test_without_notifications_the_loop_polls() -> None:
    backend = MemoryBackend()
    loop = _loop(backend, poll=0.05, idle_secs=3600.0)
    loop.start()
    try:
        at = time.time() + 0.2
        backend.add_schedule(Schedule(id="s", task="t", kind="at", at=at, next_fire_at=at))
        wait_for(lambda: backend.get(fire_job_id("s", at)) is not None, timeout=10)
    finally:
        loop.stop()
    assert loop.peeks == 0


def test_idle_secs_must_be_positive() -> None:
    import pytest

    with pytest.raises(ValueError, match="idle_secs=0"):
        _loop(MemoryBackend(), idle_secs=0)
