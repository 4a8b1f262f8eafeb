"""Misfires: grace period, coalesce (latest, earliest, all), catch-up limit, jitter."""

from __future__ import annotations

import pytest
from nuvom_backend_memory import MemoryBackend
from nuvom_scheduler import SchedulerLoop
from nuvom_scheduler.timing import Defaults, next_fire, plan_fire

from nuvom_kernel.app import Nuvom
from nuvom_kernel.schedules import Schedule, ScheduleState, fire_job_id

T0 = 1_800_000_000.0


def every(secs: float, **fields: object) -> Schedule:
    values: dict[str, object] = {"id": "s", "task": "t", "kind": "interval", "interval_secs": secs, "anchor": T0,
                                 "next_fire_at": T0}
    values.update(fields)
    return Schedule(**values)  # type: ignore[arg-type]


def test_on_time_fires_one() -> None:
    plan = plan_fire(every(10), T0 + 0.2, Defaults())
    assert plan.fire_times == [T0] and plan.next_fire_at == T0 + 10 and plan.missed == plan.coalesced == 0


@pytest.mark.parametrize(("coalesce", "fired", "coalesced"), [
    ("latest", [T0 + 50], 5), ("earliest", [T0], 5), ("all", [T0 + i * 10 for i in range(6)], 0)])
def test_coalesce_policies(coalesce: str, fired: list[float], coalesced: int) -> None:
    plan = plan_fire(every(10, coalesce=coalesce), T0 + 55, Defaults(misfire_grace_secs=300))
    assert plan.fire_times == fired and plan.coalesced == coalesced and plan.missed == 0
    assert plan.next_fire_at == T0 + 60


def test_occurrences_past_their_grace_are_missed() -> None:
    plan = plan_fire(every(10, coalesce="all", misfire_grace_secs=25), T0 + 55, Defaults())
    # due: 0..50; within 25 s of 55: 30, 40, 50
    assert plan.fire_times == [T0 + 30, T0 + 40, T0 + 50] and plan.missed == 3


def test_a_long_outage_jumps_without_walking_every_occurrence() -> None:
    plan = plan_fire(every(1, coalesce="all", misfire_grace_secs=2), T0 + 10_000_000, Defaults())
    assert plan.fire_times == [T0 + 9_999_998, T0 + 9_999_999, T0 + 10_000_000]
    assert plan.missed == 9_999_998 and plan.next_fire_at == T0 + 10_000_001


def test_catch_up_limit_keeps_the_latest() -> None:
    plan = plan_fire(every(1, coalesce="all", catch_up_limit=3), T0 + 9.5, Defaults(misfire_grace_secs=60))
    assert plan.fire_times == [T0 + 7, T0 + 8, T0 + 9] and plan.missed == 7


def test_a_one_off_fires_once_then_ends() -> None:
    once = Schedule(id="o", task="t", kind="at", at=T0, next_fire_at=T0)
    plan = plan_fire(once, T0 + 1, Defaults())
    assert plan.fire_times == [T0] and plan.next_fire_at is None
    assert next_fire(once, T0) is None


def test_a_one_off_later_than_its_grace_is_missed_not_fired() -> None:
    once = Schedule(id="o", task="t", kind="at", at=T0, next_fire_at=T0, misfire_grace_secs=5)
    plan = plan_fire(once, T0 + 60, Defaults())
    assert plan.fire_times == [] and plan.missed == 1 and plan.next_fire_at is None


def test_the_loop_applies_the_plan_and_jitter() -> None:
    backend = MemoryBackend()
    app = Nuvom(queue=backend, queue_backend="memory", result_backend="memory")
    backend.add_schedule(every(10, coalesce="all", jitter_secs=5.0))
    backend.add_schedule(Schedule(id="o", task="t", kind="at", at=T0, next_fire_at=T0))
    clock = {"now": T0 + 25}
    loop = SchedulerLoop(app, clock=lambda: clock["now"], periodic=False)
    assert loop.run_once() == 4
    jobs = {j.id: j for j in backend.query_jobs(limit=100).jobs}
    for i in range(3):
        job = jobs[fire_job_id("s", T0 + i * 10)]
        assert job.eta is not None and T0 + i * 10 <= job.eta <= T0 + i * 10 + 5
        assert "schedule:s" in job.tags
    assert backend.get_schedule("o").state == ScheduleState.DONE
    assert backend.get_schedule("s").next_fire_at == T0 + 30
    assert loop.run_once() == 0  # nothing due until T0 + 30


def test_one_broken_schedule_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    backend = MemoryBackend()
    app = Nuvom(queue=backend, queue_backend="memory", result_backend="memory")
    backend.add_schedule(Schedule(id="broken", task="t", kind="cron", cron="0 0 * * *", timezone="Not/AZone",
                                  next_fire_at=T0 - 1))
    backend.add_schedule(every(10))
    loop = SchedulerLoop(app, clock=lambda: T0 + 1, periodic=False)
    assert loop.run_once() == 1
    assert "schedule broken cannot fire" in caplog.text


@pytest.mark.parametrize(("kwargs", "message"), [({"poll": 0}, "poll=0"), ({"batch": 0}, "batch=0"),
                                                 ({"jitter": -1}, "jitter=-1")])
def test_loop_arguments_are_checked(kwargs: dict[str, float], message: str) -> None:
    app = Nuvom(queue=MemoryBackend(), queue_backend="memory", result_backend="memory")
    with pytest.raises(ValueError, match=message):
        SchedulerLoop(app, **kwargs)  # type: ignore[arg-type]
