"""``ScheduleStoreContract``: the rules every schedule store keeps.

Subclass it with the same fixtures as :class:`QueueBackendContract`
(``backend``: an empty backend that provides the ``schedules`` and ``queue``
roles; optionally ``backend_factory``: another object on the same storage)::

    class TestMySchedules(ScheduleStoreContract):
        @pytest.fixture
        def backend(self, tmp_path):
            b = MyBackend(tmp_path / "q")
            yield b
            b.close()

The central rule is the atomic fire: racing schedulers, each with its own
object on the store, fire every occurrence exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from nuvom_kernel.contracts import CAPABILITIES, capabilities_of
from nuvom_kernel.models import Job, JobState, now
from nuvom_kernel.schedules import Schedule, ScheduleState, fire_job_id


def make_schedule(schedule_id: str = "every-minute", *, next_fire_at: float | None = None, **fields: Any) -> Schedule:
    """An interval schedule (60 s) due at ``next_fire_at`` (default: 10 s ago)."""
    at = now() - 10 if next_fire_at is None else next_fire_at
    values: dict[str, Any] = {"id": schedule_id, "task": "contract.tick", "kind": "interval", "interval_secs": 60.0,
                              "anchor": at, "next_fire_at": at, "args": [1, "two"], "kwargs": {"k": [3]}}
    values.update(fields)
    return Schedule(**values)


def fire_job(schedule: Schedule, fire_at: float) -> Job:
    job = Job(id=fire_job_id(schedule.id, fire_at), task=schedule.task, args=list(schedule.args),
              kwargs=dict(schedule.kwargs))
    return job


class ScheduleStoreContract:
    """Subclass with a ``backend`` fixture (and optionally ``backend_factory``).

    ``schedules_optional = True`` skips the suite for a backend that does not
    declare the role (``nuvom plugin test`` runs it on every queue backend).
    """

    schedules_optional = False

    @pytest.fixture(autouse=True)
    def _schedules_role(self, request: pytest.FixtureRequest) -> None:
        mine = getattr(request.function, "__qualname__", "").startswith("ScheduleStoreContract.")
        if mine and self.schedules_optional and "schedules" not in capabilities_of(request.getfixturevalue("backend")):
            pytest.skip("this backend provides no schedule store")

    @pytest.fixture
    def backend_factory(self, backend: Any) -> Callable[[], Any]:
        return lambda: backend

    @pytest.fixture
    def peer(self, backend_factory: Callable[[], Any]) -> Any:
        return backend_factory()

    def test_declares_the_role(self, backend: Any) -> None:
        assert "schedules" in capabilities_of(backend)
        assert isinstance(backend, CAPABILITIES["schedules"])

    def test_add_get_round_trip(self, backend: Any, peer: Any) -> None:
        s = make_schedule(kind="cron", cron="*/5 * * * *", timezone="Europe/Paris", interval_secs=None,
                          options={"queue": "reports", "retries": 2}, misfire_grace_secs=30.0, coalesce="all",
                          catch_up_limit=5, jitter_secs=1.5)
        stored = backend.add_schedule(s)
        assert stored.id == s.id
        got = peer.get_schedule(s.id)
        assert got is not None and got.to_dict() == s.to_dict()
        got.args.append("mutated")
        again = backend.get_schedule(s.id)
        assert again is not None and again.args == [1, "two"]
        assert backend.get_schedule("never-added") is None

    def test_same_id_is_one_schedule(self, backend: Any, peer: Any) -> None:
        first = make_schedule(args=[1])
        backend.add_schedule(first)
        back = peer.add_schedule(make_schedule(args=[2]))
        assert back.args == [1]
        assert [s.id for s in backend.list_schedules()] == [first.id]

    def test_replace_updates_a_changed_definition_and_keeps_state(self, backend: Any,
                                                                  peer: Any) -> None:
        backend.add_schedule(make_schedule(origin="code"))
        backend.set_schedule_state("every-minute", ScheduleState.PAUSED)
        unchanged = peer.add_schedule(make_schedule(origin="code"), replace=True)
        assert unchanged.state == ScheduleState.PAUSED
        later = now() + 500
        changed = peer.add_schedule(make_schedule(origin="code", interval_secs=5.0, next_fire_at=later), replace=True)
        assert changed.interval_secs == 5.0 and changed.next_fire_at == later and changed.state == ScheduleState.PAUSED
        stored = backend.get_schedule("every-minute")
        assert stored is not None and stored.interval_secs == 5.0 and stored.state == ScheduleState.PAUSED

    def test_list_by_id(self, backend: Any) -> None:
        for sid in ("b-sched", "a-sched", "c-sched"):
            backend.add_schedule(make_schedule(sid))
        assert [s.id for s in backend.list_schedules()] == ["a-sched", "b-sched", "c-sched"]

    def test_due_is_active_and_earliest_first(self, backend: Any) -> None:
        t = now()
        backend.add_schedule(make_schedule("late", next_fire_at=t - 5))
        backend.add_schedule(make_schedule("early", next_fire_at=t - 50))
        backend.add_schedule(make_schedule("future", next_fire_at=t + 3600))
        backend.add_schedule(make_schedule("paused", next_fire_at=t - 100))
        backend.set_schedule_state("paused", ScheduleState.PAUSED)
        assert [s.id for s in backend.due_schedules(t, 10)] == ["early", "late"]
        assert [s.id for s in backend.due_schedules(t, 1)] == ["early"]
        assert [s.id for s in backend.due_schedules(t + 7200, 10)] == ["early", "late", "future"]

    def test_fire_enqueues_and_advances_once(self, backend: Any, peer: Any) -> None:
        s = backend.add_schedule(make_schedule())
        fire_at = s.next_fire_at
        job = fire_job(s, fire_at)
        assert backend.fire_schedule(s.id, fire_at, [job], fire_at + 60) is True
        stored = peer.get_schedule(s.id)
        assert stored.next_fire_at == fire_at + 60 and stored.fire_count == 1 and stored.last_fire_at == fire_at
        got = peer.get(job.id)
        assert got is not None and got.task == "contract.tick" and got.args == [1, "two"] and got.state == JobState.QUEUED
        # the same occurrence again, from either object: refused, nothing added
        assert peer.fire_schedule(s.id, fire_at, [fire_job(s, fire_at)], fire_at + 60) is False
        assert backend.fire_schedule(s.id, fire_at, [fire_job(s, fire_at)], fire_at + 60) is False
        assert backend.get_schedule(s.id).fire_count == 1
        claimed = peer.claim(["default"], 10, 30.0, "contract-worker")
        assert [j.id for j in claimed] == [job.id]

    def test_fire_counts_misses_and_coalesced(self, backend: Any) -> None:
        s = backend.add_schedule(make_schedule())
        assert backend.fire_schedule(s.id, s.next_fire_at, [fire_job(s, s.next_fire_at)], s.next_fire_at + 60,
                                     missed=3, coalesced=2)
        stored = backend.get_schedule(s.id)
        assert stored is not None and (stored.missed_count, stored.coalesced_count) == (3, 2)

    def test_last_fire_ends_the_schedule(self, backend: Any) -> None:
        s = backend.add_schedule(make_schedule("once", kind="at", at=now() - 1, interval_secs=None))
        assert backend.fire_schedule(s.id, s.next_fire_at, [fire_job(s, s.next_fire_at)], None)
        stored = backend.get_schedule("once")
        assert stored is not None and stored.state == ScheduleState.DONE and stored.next_fire_at is None
        assert backend.due_schedules(now() + 10**6, 10) == []

    def test_fire_with_no_job_only_advances(self, backend: Any) -> None:
        s = backend.add_schedule(make_schedule())
        assert backend.fire_schedule(s.id, s.next_fire_at, [], s.next_fire_at + 60, missed=1)
        stored = backend.get_schedule(s.id)
        assert stored.fire_count == 0 and stored.missed_count == 1 and stored.last_fire_at is None

    def test_paused_and_cancelled_do_not_fire(self, backend: Any) -> None:
        s = backend.add_schedule(make_schedule())
        for state in (ScheduleState.PAUSED, ScheduleState.CANCELLED):
            assert backend.set_schedule_state(s.id, state).state == state
            job = fire_job(s, s.next_fire_at)
            assert backend.fire_schedule(s.id, s.next_fire_at, [job], s.next_fire_at + 60) is False
            assert backend.get(job.id) is None
        assert backend.set_schedule_state("never-added", ScheduleState.PAUSED) is None

    def test_resume_fires_again(self, backend: Any) -> None:
        s = backend.add_schedule(make_schedule())
        backend.set_schedule_state(s.id, ScheduleState.PAUSED)
        assert backend.set_schedule_state(s.id, ScheduleState.ACTIVE).state == ScheduleState.ACTIVE
        assert backend.fire_schedule(s.id, s.next_fire_at, [fire_job(s, s.next_fire_at)], s.next_fire_at + 60)

    def test_a_stored_job_id_stays_one_job(self, backend: Any) -> None:
        s = backend.add_schedule(make_schedule())
        job = fire_job(s, s.next_fire_at)
        backend.enqueue(job.model_copy(deep=True))
        assert backend.fire_schedule(s.id, s.next_fire_at, [job], s.next_fire_at + 60)
        assert len([j for j in backend.query_jobs(limit=100).jobs if j.id == job.id]) == 1

    def test_racing_schedulers_fire_each_occurrence_once(self, backend: Any,
                                                        backend_factory: Callable[[], Any]) -> None:
        """Six threads, each with its own object, fire 40 occurrences as fast as they can."""
        start = now() - 1000
        backend.add_schedule(make_schedule("race", next_fire_at=start, interval_secs=1.0, anchor=start))
        stores = [backend_factory() for _ in range(6)]
        wins: list[float] = []
        lock = threading.Lock()
        errors: list[BaseException] = []
        last = start + 39

        def scheduler(store: Any) -> None:
            try:
                while True:
                    due = store.due_schedules(start + 100, 5)
                    if not due or due[0].next_fire_at > last:
                        return
                    s = due[0]
                    fire_at = s.next_fire_at
                    if store.fire_schedule(s.id, fire_at, [fire_job(s, fire_at)], fire_at + 1.0):
                        with lock:
                            wins.append(fire_at)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=scheduler, args=(store,)) for store in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert sorted(wins) == [start + i for i in range(40)]
        stored = backend.get_schedule("race")
        assert stored.fire_count == 40 and stored.next_fire_at == start + 40
        ids = {j.id for j in backend.query_jobs(limit=1000).jobs}
        assert ids == {fire_job_id("race", start + i) for i in range(40)}

    # -- retention -------------------------------------------------------------------

    def _ended_mix(self, backend: Any) -> str:
        """active, paused, done, cancelled (api) and cancelled (code) schedules;
        returns the id of the job the done one fired."""
        backend.add_schedule(make_schedule("s-active"))
        backend.add_schedule(make_schedule("s-paused"))
        backend.set_schedule_state("s-paused", ScheduleState.PAUSED)
        once = backend.add_schedule(make_schedule("s-done", kind="at", at=now() - 1, interval_secs=None))
        assert backend.fire_schedule(once.id, once.next_fire_at, [fire_job(once, once.next_fire_at)], None)
        backend.add_schedule(make_schedule("s-cancelled"))
        backend.set_schedule_state("s-cancelled", ScheduleState.CANCELLED)
        backend.add_schedule(make_schedule("periodic.contract.tick", origin="code"))
        backend.set_schedule_state("periodic.contract.tick", ScheduleState.CANCELLED)
        return fire_job_id(once.id, once.next_fire_at)

    def test_purge_deletes_ended_schedules_only(self, backend: Any, peer: Any) -> None:
        fired = self._ended_mix(backend)
        assert peer.purge_schedules() == 2
        assert [s.id for s in backend.list_schedules()] == ["periodic.contract.tick", "s-active", "s-paused"]
        assert backend.get_schedule("s-done") is None and backend.get_schedule("s-cancelled") is None
        # the fired job is a job like any other: kept until the job store's purge
        assert backend.get(fired) is not None
        assert peer.purge_schedules() == 0
        assert peer.purge_schedules(include_code=True) == 1
        assert [s.id for s in backend.list_schedules()] == ["s-active", "s-paused"]
        assert [s.id for s in backend.due_schedules(now() + 10, 10)] == ["s-active"]

    def test_purge_by_state_and_age(self, backend: Any) -> None:
        self._ended_mix(backend)
        assert backend.purge_schedules(older_than=now() - 3600) == 0  # they ended a moment ago
        assert backend.purge_schedules(states=[ScheduleState.DONE], older_than=now() + 1) == 1
        assert backend.get_schedule("s-done") is None and backend.get_schedule("s-cancelled") is not None
        assert backend.purge_schedules(states=[ScheduleState.CANCELLED], older_than=now() + 1) == 1
        assert backend.get_schedule("s-cancelled") is None

    def test_purge_refuses_live_states(self, backend: Any) -> None:
        backend.add_schedule(make_schedule("s-active"))
        for state in (ScheduleState.ACTIVE, ScheduleState.PAUSED):
            with pytest.raises(ValueError, match="never deletes"):
                backend.purge_schedules(states=[state])
        assert backend.get_schedule("s-active") is not None

    def test_a_purged_id_is_free_again(self, backend: Any) -> None:
        s = backend.add_schedule(make_schedule("again"))
        backend.set_schedule_state(s.id, ScheduleState.CANCELLED)
        assert backend.purge_schedules() == 1
        fresh = backend.add_schedule(make_schedule("again", args=["new"]))
        assert fresh.state == ScheduleState.ACTIVE and fresh.args == ["new"] and fresh.fire_count == 0
        assert backend.fire_schedule("again", fresh.next_fire_at, [], fresh.next_fire_at + 60)
