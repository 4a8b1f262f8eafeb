"""The Redis schedule store beyond the contract: a resent fire, the key layout."""

from __future__ import annotations

from collections.abc import Callable

from nuvom_backend_redis import RedisBackend
from nuvom_backend_redis.codec import enqueue_args

from nuvom_kernel.models import Job, JobState, now
from nuvom_kernel.schedules import Schedule, ScheduleState, fire_job_id


def interval(schedule_id: str = "tick", at: float | None = None) -> Schedule:
    start = now() - 5 if at is None else at
    return Schedule(id=schedule_id, task="t.tick", kind="interval", interval_secs=60.0, anchor=start,
                    next_fire_at=start)


def test_a_resent_fire_returns_its_first_answer_and_fires_once(open_backend: Callable[..., RedisBackend]) -> None:
    """The fire's reply was lost and the call is sent again with its request id:
    the stored answer (fired) comes back; the schedule advanced once."""
    b = open_backend()
    s = b.add_schedule(interval())
    fire_at = s.next_fire_at
    assert fire_at is not None
    job = Job(id=fire_job_id(s.id, fire_at), task=s.task)
    args = [b.prefix, "0.0", "60:fire-1", s.id, repr(fire_at), repr(fire_at + 60), repr(fire_at), "1", "0", "0",
            repr(now()), "1", *enqueue_args(job)]
    script = b._scripts["FIRE"]
    assert script(keys=[b.key("token")], args=args, client=b.r) == 1
    assert script(keys=[b.key("token")], args=args, client=b.r) == 1  # the resend: same answer
    stored = b.get_schedule(s.id)
    assert stored is not None and stored.fire_count == 1 and stored.next_fire_at == fire_at + 60
    assert b.fire_schedule(s.id, fire_at, [job], fire_at + 60) is False  # a new request: refused


def test_the_due_index_follows_state_changes(open_backend: Callable[..., RedisBackend]) -> None:
    b = open_backend()
    s = b.add_schedule(interval())
    due = b.key("sched", "due")
    assert b.r.zscore(due, s.id) == s.next_fire_at
    b.set_schedule_state(s.id, ScheduleState.PAUSED)
    assert b.r.zscore(due, s.id) is None and b.due_schedules(now() + 10, 10) == []
    b.set_schedule_state(s.id, ScheduleState.ACTIVE)
    assert [x.id for x in b.due_schedules(now() + 10, 10)] == [s.id]
    once = b.add_schedule(Schedule(id="once", task="t.tick", kind="at", at=now() - 1, next_fire_at=now() - 1))
    assert once.next_fire_at is not None
    jitter_eta = now() + 3600  # a jittered job: stored as scheduled, not claimable yet
    job = Job(id=fire_job_id("once", once.next_fire_at), task="t.tick", eta=jitter_eta)
    assert b.fire_schedule("once", once.next_fire_at, [job], None)
    assert b.r.zscore(due, "once") is None
    stored_job = b.get(job.id)
    assert stored_job is not None and stored_job.state == JobState.SCHEDULED
    assert b.claim(["default"], 10, 30.0, "w") == []


def test_schedule_changes_wake_scheduler_loops_and_not_claims(open_backend: Callable[..., RedisBackend]) -> None:
    """A schedule added, paused or resumed elsewhere rings ``subscribe_schedules``
    (a wake-stream entry with the field ``s``); an enqueue rings only the claims'
    doorbell, and a schedule change does not make idle workers claim; and a
    loop can look at the earliest schedule with ``due_schedules(inf, 1)``."""
    import math
    import threading
    import time

    loop_side, other = open_backend(), open_backend()
    told, claims = threading.Event(), threading.Event()
    loop_side.subscribe(claims.set)
    loop_side.subscribe_schedules(told.set)
    assert loop_side.wake.healthy.wait(10)
    time.sleep(0.2)
    told.clear()
    claims.clear()
    other.enqueue(Job(task="t"))
    assert claims.wait(10)
    time.sleep(0.3)
    assert not told.is_set()
    claims.clear()
    loop_side.wake.dirty.clear()
    later = now() + 3600
    other.add_schedule(interval("hourly", at=later))
    assert told.wait(10)
    told.clear()
    other.set_schedule_state("hourly", ScheduleState.PAUSED)
    assert told.wait(10)
    assert not claims.is_set() and not loop_side.wake.dirty.is_set()
    other.set_schedule_state("hourly", ScheduleState.ACTIVE)
    [head] = loop_side.due_schedules(math.inf, 1)
    assert head.id == "hourly" and head.next_fire_at == later
