"""``QueueBackendContract``: the rules every queue backend keeps.

Use it from a plugin's tests::

    import pytest
    from nuvom_kernel.testing import QueueBackendContract

    class TestMyQueue(QueueBackendContract):
        @pytest.fixture
        def backend(self, tmp_path):
            b = MyBackend(tmp_path / "q")
            yield b
            b.close()

        # another object on the same storage (another connection, another
        # process's view); the default reuses ``backend``, which a store
        # that lives in one object (memory) must accept
        @pytest.fixture
        def backend_factory(self, backend, tmp_path):
            return lambda: MyBackend(tmp_path / "q")

Many tests use two objects on one store, ``backend`` and ``peer`` (one made
by ``backend_factory``): jobs enqueued through one are claimed, started,
finished and read through the other, as producers and workers in separate
processes do.  Every test starts from an empty backend.  No test sleeps to synchronise:
waits poll a condition with a generous deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from nuvom_kernel.contracts import Completion, JobFilter, ResultBackend, StorageBackend, Swept
from nuvom_kernel.errors import InvalidIdError
from nuvom_kernel.models import ErrorInfo, Job, JobState, Outcome, WorkerInfo, now

WAIT = 10.0  # generous bound for anything that should happen "soon"


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def make_job(task: str = "contract.task", **fields: Any) -> Job:
    return Job(task=task, **fields)


def succeed(result: Any = None) -> Outcome:
    return Outcome(kind="succeeded", result=result)


class QueueBackendContract:
    """Subclass with a ``backend`` fixture (and optionally ``backend_factory``)."""

    lease = 30.0

    @pytest.fixture
    def backend_factory(self, backend: StorageBackend) -> Callable[[], StorageBackend]:
        return lambda: backend

    @pytest.fixture
    def peer(self, backend_factory: Callable[[], StorageBackend]) -> StorageBackend:
        """A second object on the backend's store (the same one without a factory)."""
        return backend_factory()

    # -- enqueue / claim / finish ----------------------------------------------------

    def test_enqueue_then_get(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job(args=[1, "a"], kwargs={"k": [1, 2]}, tags=["t"]))
        assert job.state == JobState.QUEUED
        got = backend.get(job.id)
        assert got is not None
        assert (got.task, got.args, got.kwargs, got.tags, got.attempts) == ("contract.task", [1, "a"], {"k": [1, 2]}, ["t"], 0)
        assert got.history and got.history[-1].state == JobState.QUEUED

    def test_get_unknown_is_none(self, backend: StorageBackend) -> None:
        assert backend.get("no-such-job") is None

    def test_claim_takes_a_lease_and_start_counts_the_attempt(self, backend: StorageBackend, peer: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        before = now()
        [claimed] = peer.claim(["default"], 10, self.lease, "w1")
        assert claimed.id == job.id
        assert claimed.state == JobState.CLAIMED and claimed.attempts == 0
        assert claimed.token is not None
        assert claimed.worker_id == "w1"
        assert claimed.lease_expires_at is not None and claimed.lease_expires_at >= before + self.lease - 1
        assert backend.claim(["default"], 10, self.lease, "w2") == []
        stored = backend.get(job.id)
        assert stored is not None and stored.state == JobState.CLAIMED and stored.attempts == 0
        assert peer.start({job.id: claimed.token + 1}) == set()
        assert peer.start({job.id: claimed.token}) == {job.id}
        assert backend.start({job.id: claimed.token}) == set()  # once, whichever object asks
        running = backend.get(job.id)
        assert running is not None and running.state == JobState.RUNNING and running.attempts == 1
        assert running.started_at is not None and running.token == claimed.token

    def test_claim_can_start_the_first_jobs_at_once(self, backend: StorageBackend) -> None:
        backend.enqueue_many([make_job(args=[i], created_at=1000.0 + i) for i in range(3)])
        got = backend.claim(["default"], 3, self.lease, "w", start_now=2)
        assert [j.args[0] for j in got] == [0, 1, 2]
        assert [(j.state, j.attempts) for j in got] == [
            (JobState.RUNNING, 1), (JobState.RUNNING, 1), (JobState.CLAIMED, 0)]
        assert [(j.state, j.attempts) for j in (backend.get(x.id) for x in got) if j is not None] == [
            (JobState.RUNNING, 1), (JobState.RUNNING, 1), (JobState.CLAIMED, 0)]

    def test_a_cancelled_claim_is_never_started(self, backend: StorageBackend, peer: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        [c] = peer.claim(["default"], 1, self.lease, "w")
        cancelled = backend.cancel(job.id, "not needed")
        assert cancelled is not None and cancelled.state == JobState.CANCELLED
        assert peer.start({job.id: c.token or 0}) == set()
        assert peer.finish(job.id, c.token or 0, succeed()) is False
        final = backend.get(job.id)
        assert final is not None and final.state == JobState.CANCELLED and final.attempts == 0

    def test_same_job_id_twice_is_one_job(self, backend: StorageBackend, peer: StorageBackend) -> None:
        first = backend.enqueue(make_job(id="fixed-id-1", args=[1]))
        second = peer.enqueue(make_job(id="fixed-id-1", args=[2]))
        assert second.id == first.id and second.args == [1]
        [c] = backend.claim(["default"], 5, self.lease, "w")
        assert c.id == "fixed-id-1" and backend.claim(["default"], 5, self.lease, "w") == []
        assert len(backend.query_jobs(limit=10).jobs) == 1

    def test_same_job_id_racing_is_one_job(self, backend: StorageBackend, backend_factory: Callable[[], StorageBackend]) -> None:
        answers: list[tuple[str, list[Any]]] = []
        lock = threading.Lock()

        def add(n: int) -> None:
            got = backend_factory().enqueue(make_job(id="racing-id", args=[n]))
            with lock:
                answers.append((got.id, got.args))

        threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(answers) == 6 and {a[0] for a in answers} == {"racing-id"}
        assert len({tuple(a[1]) for a in answers}) == 1  # everyone got the one stored job
        claimed = backend.claim(["default"], 10, self.lease, "w")
        assert [j.id for j in claimed] == ["racing-id"]

    def test_finish_with_live_token_stores_result(self, backend: StorageBackend, peer: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        [claimed] = peer.claim(["default"], 1, self.lease, "w1", start_now=1)
        assert claimed.token is not None
        value = {"n": 1, "list": [1, 2.5, "x", None, True], "nested": {"ü": "ñ"}}
        assert peer.finish(job.id, claimed.token, succeed(value)) is True
        done = backend.get(job.id)
        assert done is not None
        assert done.state == JobState.SUCCEEDED and done.result == value
        assert done.finished_at is not None and done.token is None
        assert [t.state for t in done.history][-2:] == [JobState.RUNNING, JobState.SUCCEEDED]

    def test_stale_token_is_refused(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        [claimed] = backend.claim(["default"], 1, self.lease, "w1")
        assert claimed.token is not None
        assert backend.finish(job.id, claimed.token + 1, succeed("x")) is False
        assert backend.finish(job.id, claimed.token, succeed("ok")) is True
        assert backend.finish(job.id, claimed.token, succeed("again")) is False
        done = backend.get(job.id)
        assert done is not None and done.result == "ok"

    def test_failed_outcome_keeps_every_error(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job(max_retries=1))
        [c1] = backend.claim(["default"], 1, self.lease, "w", start_now=1)
        assert c1.token is not None
        e1 = ErrorInfo(attempt=1, type="builtins.ValueError", message="first", traceback="tb1")
        assert backend.finish(job.id, c1.token, Outcome(kind="retry", error=e1, eta=None))
        [c2] = backend.claim(["default"], 1, self.lease, "w", start_now=1)
        assert c2.token is not None and c2.token > c1.token and c2.attempts == 2
        e2 = ErrorInfo(attempt=2, type="builtins.KeyError", message="second", traceback="tb2")
        assert backend.finish(job.id, c2.token, Outcome(kind="failed", error=e2))
        done = backend.get(job.id)
        assert done is not None and done.state == JobState.FAILED
        assert [(e.attempt, e.type, e.message, e.traceback) for e in done.errors] == [
            (1, "builtins.ValueError", "first", "tb1"), (2, "builtins.KeyError", "second", "tb2")]

    def test_retry_with_eta_is_scheduled(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job(max_retries=1))
        [c] = backend.claim(["default"], 1, self.lease, "w")
        assert c.token is not None
        assert backend.finish(job.id, c.token, Outcome(kind="retry", eta=now() + 3600))
        stored = backend.get(job.id)
        assert stored is not None and stored.state == JobState.SCHEDULED
        assert backend.claim(["default"], 1, self.lease, "w") == []

    def test_dead_and_cancelled_outcomes(self, backend: StorageBackend) -> None:
        a = backend.enqueue(make_job())
        b = backend.enqueue(make_job())
        claimed = {j.id: j for j in backend.claim(["default"], 2, self.lease, "w")}
        assert backend.finish(a.id, claimed[a.id].token or 0, Outcome(kind="dead", reason="unknown task 'x'"))
        assert backend.finish(b.id, claimed[b.id].token or 0, Outcome(kind="cancelled", reason="stop"))
        da, db = backend.get(a.id), backend.get(b.id)
        assert da is not None and da.state == JobState.DEAD and da.reason == "unknown task 'x'"
        assert db is not None and db.state == JobState.CANCELLED

    # -- ordering ------------------------------------------------------------------------

    def test_fifo_within_a_priority(self, backend: StorageBackend) -> None:
        ids = [backend.enqueue(make_job(created_at=1000.0 + i)).id for i in range(10)]
        got = [backend.claim(["default"], 1, self.lease, "w")[0].id for _ in range(10)]
        assert got == ids

    def test_higher_priority_first(self, backend: StorageBackend) -> None:
        low = backend.enqueue(make_job(priority=0, created_at=1.0))
        high = backend.enqueue(make_job(priority=9, created_at=2.0))
        mid = backend.enqueue(make_job(priority=5, created_at=3.0))
        got = [j.id for j in backend.claim(["default"], 3, self.lease, "w")]
        assert got == [high.id, mid.id, low.id]

    def test_eta_in_future_is_scheduled_until_due(self, backend: StorageBackend) -> None:
        later = backend.enqueue(make_job(eta=now() + 0.5))
        assert later.state == JobState.SCHEDULED
        assert backend.claim(["default"], 5, self.lease, "w") == []
        claimed = wait_for(lambda: backend.claim(["default"], 5, self.lease, "w"))
        assert [j.id for j in claimed] == [later.id]

    def test_claims_only_named_queues(self, backend: StorageBackend) -> None:
        a = backend.enqueue(make_job(queue="alpha"))
        b = backend.enqueue(make_job(queue="beta"))
        assert backend.claim(["default"], 5, self.lease, "w") == []
        assert [j.id for j in backend.claim(["beta"], 5, self.lease, "w")] == [b.id]
        assert [j.id for j in backend.claim(["alpha", "beta"], 5, self.lease, "w")] == [a.id]

    # -- batches and concurrency -----------------------------------------------------------

    def test_batch_claims(self, backend: StorageBackend) -> None:
        jobs = backend.enqueue_many([make_job(args=[i]) for i in range(50)])
        assert len({j.id for j in jobs}) == 50
        first = backend.claim(["default"], 20, self.lease, "w")
        second = backend.claim(["default"], 20, self.lease, "w")
        third = backend.claim(["default"], 20, self.lease, "w")
        assert (len(first), len(second), len(third)) == (20, 20, 10)
        assert len({j.id for j in first + second + third}) == 50

    def test_exchange_finishes_then_claims(self, backend: StorageBackend) -> None:
        a = backend.enqueue(make_job())
        [ca] = backend.claim(["default"], 1, self.lease, "w")
        b = backend.enqueue(make_job())
        c = backend.enqueue(make_job())
        claims = {j.id: j for j in backend.claim(["default"], 5, self.lease, "w")}
        assert set(claims) == {b.id, c.id}
        cc = claims[c.id]
        d = backend.enqueue(make_job())
        accepted, claimed, started = backend.exchange(
            [Completion(a.id, ca.token or 0, succeed(1)), Completion(a.id, (ca.token or 0) + 7, succeed(2))],
            ["default"], 5, self.lease, "w", starts={c.id: cc.token or 0, b.id: (claims[b.id].token or 0) + 100}, start_now=1)
        assert accepted == [True, False]
        assert started == {c.id}  # b's token is not the live one
        assert [(j.id, j.state) for j in claimed] == [(d.id, JobState.RUNNING)]
        done = backend.get(a.id)
        assert done is not None and done.result == 1
        running = backend.get(c.id)
        assert running is not None and running.state == JobState.RUNNING and running.attempts == 1

    def test_concurrent_claims_never_share_a_job(self, backend: StorageBackend, backend_factory: Callable[[], StorageBackend]) -> None:
        total = 400
        backend.enqueue_many([make_job(args=[i]) for i in range(total)])
        seen: list[str] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def drain(n: int) -> None:
            try:
                b = backend_factory()
                while True:
                    got = b.claim(["default"], 7, self.lease, f"w{n}")
                    if not got:
                        return
                    for j in got:
                        assert b.finish(j.id, j.token or 0, succeed(j.args[0]))
                    with lock:
                        seen.extend(j.id for j in got)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert len(seen) == total and len(set(seen)) == total

    # -- leases ------------------------------------------------------------------------------

    def test_renew_extends_live_leases_and_reports_lost(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        [c] = backend.claim(["default"], 1, 1.0, "w")
        assert c.token is not None and c.lease_expires_at is not None
        lost = backend.renew({job.id: c.token}, 60.0)
        assert lost == set()
        renewed = backend.get(job.id)
        assert renewed is not None and renewed.lease_expires_at is not None
        assert renewed.lease_expires_at > c.lease_expires_at + 30
        assert backend.renew({job.id: c.token + 1}, 60.0) == {job.id}

    def test_heartbeat_registers_renews_and_reports_lost_and_cancelled(self, backend: StorageBackend, peer: StorageBackend) -> None:
        a, b, c = (backend.enqueue(make_job(created_at=1000.0 + i)) for i in range(3))
        ca, cb, cc = backend.claim(["default"], 3, 1.0, "w-beat", start_now=2)
        assert cc.state == JobState.CLAIMED
        peer.cancel(b.id)  # running: flagged (by an operator's process)
        peer.cancel(c.id)  # claimed: cancelled at once, so this worker's lease is lost
        info = WorkerInfo(id="w-beat", host="h", pid=1, queues=["default"], concurrency=2, executor="thread",
                          started_at=now(), heartbeat_at=now())
        leases = {a.id: ca.token or 0, b.id: cb.token or 0, c.id: cc.token or 0}
        beat = backend.heartbeat(info, leases, 60.0)
        assert beat.lost == {c.id} and beat.cancel_requested == {b.id}
        assert [w.id for w in backend.list_workers()] == ["w-beat"]
        renewed = backend.get(a.id)
        assert renewed is not None and renewed.lease_expires_at is not None
        assert renewed.lease_expires_at > now() + 30
        quiet = backend.heartbeat(None, {a.id: ca.token or 0}, 0.0)  # a check only: nothing renewed
        assert quiet.lost == set() and quiet.cancel_requested == set()

    def test_expired_lease_is_redelivered_with_a_new_token(self, backend: StorageBackend, peer: StorageBackend) -> None:
        job = backend.enqueue(make_job(max_retries=0))
        [c1] = backend.claim(["default"], 1, 0.2, "dead-worker", start_now=1)
        wait_for(lambda: peer.sweep() > 0)  # another process's sweeper
        requeued = backend.get(job.id)
        # a worker's death is not the task's failure: no retry used, one lease expiry counted
        assert requeued is not None and requeued.state == JobState.QUEUED
        assert (requeued.attempts, requeued.lease_expiries) == (0, 1)
        [c2] = peer.claim(["default"], 1, self.lease, "w2", start_now=1)
        # redelivered after a lease expiry: claimed, not started ahead; started on a free slot
        assert c2.id == job.id and (c2.token or 0) > (c1.token or 0) and c2.state == JobState.CLAIMED
        assert peer.start({job.id: c2.token or 0}) == {job.id}
        assert backend.finish(job.id, c1.token or 0, succeed("stale")) is False
        assert backend.finish(job.id, c2.token or 0, succeed("fresh")) is True
        done = backend.get(job.id)
        assert done is not None and done.result == "fresh" and done.attempts == 1

    def test_a_redelivered_job_is_never_started_at_claim_time(self, backend: StorageBackend, peer: StorageBackend) -> None:
        """``start_now`` starts only jobs whose lease never expired while they ran: a
        worker that starts a batch ahead of its free slots and dies before running
        them must not spend a job's lease-expiry budget twice."""
        again = backend.enqueue(make_job(max_lease_expiries=1))
        [c] = backend.claim(["default"], 1, 0.2, "dead-worker", start_now=1)
        assert c.id == again.id and c.state == JobState.RUNNING
        wait_for(lambda: peer.sweep() > 0)
        fresh = backend.enqueue(make_job())
        claimed = peer.claim(["default"], 2, 1.0, "w2", start_now=2)
        assert [(j.id, j.state) for j in claimed] == [(again.id, JobState.CLAIMED), (fresh.id, JobState.RUNNING)]
        # its claim lapsing before it ran costs nothing ...
        assert peer.finish(fresh.id, claimed[1].token or 0, succeed(1))
        wait_for(lambda: backend.sweep() > 0)
        back = backend.get(again.id)
        assert back is not None and (back.state, back.attempts, back.lease_expiries) == (JobState.QUEUED, 0, 1)
        # ... and started on a free slot it counts like any start
        [c] = peer.claim(["default"], 1, self.lease, "w3", start_now=1)
        assert c.state == JobState.CLAIMED and peer.start({c.id: c.token or 0}) == {c.id}
        assert peer.finish(c.id, c.token or 0, succeed(2))
        done = backend.get(again.id)
        assert done is not None and (done.state, done.attempts, done.lease_expiries) == (JobState.SUCCEEDED, 1, 1)

    def test_an_expired_claim_that_never_started_costs_nothing(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job(max_retries=0, max_lease_expiries=0))
        for _ in range(3):
            [c] = backend.claim(["default"], 1, 0.2, "dead-worker")
            assert c.id == job.id
            wait_for(lambda: backend.sweep() > 0)
            back = backend.get(job.id)
            assert back is not None and back.state == JobState.QUEUED
            assert (back.attempts, back.lease_expiries) == (0, 0)

    def test_sweep_dead_letters_past_the_lease_expiry_budget(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job(max_retries=5, max_lease_expiries=1))
        reports: list[Any] = []
        for expected in (JobState.QUEUED, JobState.DEAD):
            [c] = backend.claim(["default"], 1, 0.2, "dead-worker", start_now=1)
            if expected == JobState.DEAD:  # redelivered: only claimed, started on a free slot
                assert c.state == JobState.CLAIMED and backend.start({c.id: c.token or 0}) == {c.id}
            running = backend.get(job.id)
            assert c.id == job.id and running is not None and running.attempts == 1

            def swept() -> bool:
                result = backend.sweep()
                reports.append(result)
                return result > 0

            wait_for(swept)
            after = backend.get(job.id)
            assert after is not None and after.state == expected
        # sweep returns Swept: the count, and (before, after) of each job it made dead, once
        assert all(isinstance(r, Swept) for r in reports), [type(r).__name__ for r in reports]
        deaths = [pair for r in reports for pair in r.dead]
        assert len(deaths) == 1, deaths
        before, after = deaths[0]
        assert before.id == after.id == job.id
        assert before.state == JobState.RUNNING and after.state == JobState.DEAD
        assert after.reason and "lease expired 2 times" in after.reason
        dead = backend.get(job.id)
        assert dead is not None and dead.lease_expiries == 2 and dead.attempts == 0
        assert dead.reason and "lease expired 2 times" in dead.reason

    @pytest.mark.parametrize("skew", [60.0, -60.0])
    def test_the_backend_clock_decides_leases_and_etas(self, backend: StorageBackend, peer: StorageBackend, skew: float) -> None:
        """A worker whose clock is off by a minute neither loses nor steals leases,
        and its retry delays count from the backend's clock (R14)."""
        job = backend.enqueue(make_job(max_retries=1))
        [c] = backend.claim(["default"], 1, self.lease, "skewed-worker", start_now=1)
        assert c.lease_expires_at is not None and abs(c.lease_expires_at - (now() + self.lease)) < 5
        assert backend.renew({job.id: c.token or 0}, self.lease) == set()
        assert peer.sweep() == 0  # another worker's sweep: nothing expired
        worker_now = now() + skew  # what the skewed worker stamps on its outcome
        retry = Outcome(kind="retry", eta=worker_now + 0.5, at=worker_now)
        assert backend.finish(job.id, c.token or 0, retry)
        stored = backend.get(job.id)
        assert stored is not None and stored.state == JobState.SCHEDULED
        assert stored.eta is not None and abs(stored.eta - (now() + 0.5)) < 5
        assert backend.claim(["default"], 1, self.lease, "w") == []  # not due yet on the backend's clock
        again = wait_for(lambda: peer.claim(["default"], 1, self.lease, "w"))
        assert [j.id for j in again] == [job.id]

    def test_sweep_leaves_live_leases_alone(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        other = backend.enqueue(make_job())
        backend.claim(["default"], 2, 3600, "w", start_now=1)
        assert backend.sweep() == 0
        held, claimed = backend.get(job.id), backend.get(other.id)
        assert held is not None and held.state == JobState.RUNNING
        assert claimed is not None and claimed.state == JobState.CLAIMED

    def test_release_does_not_count_the_attempt(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        [c] = backend.claim(["default"], 1, self.lease, "w")
        assert backend.release(job.id, (c.token or 0) + 1) is False
        assert backend.release(job.id, c.token or 0) is True
        again = backend.get(job.id)
        assert again is not None and again.state == JobState.QUEUED and again.attempts == 0
        [c2] = backend.claim(["default"], 1, self.lease, "w", start_now=1)
        assert c2.id == job.id and c2.attempts == 1
        assert backend.release(job.id, c2.token or 0) is False  # started: only its outcome ends it

    # -- unique jobs, cancel, retry, progress --------------------------------------------------

    def test_unique_key_returns_the_live_job(self, backend: StorageBackend) -> None:
        first = backend.enqueue(make_job(unique_key="report:42"))
        second = backend.enqueue(make_job(unique_key="report:42"))
        assert second.id == first.id
        assert len(backend.query_jobs(limit=10).jobs) == 1
        [c] = backend.claim(["default"], 1, self.lease, "w")
        assert backend.enqueue(make_job(unique_key="report:42")).id == first.id  # still running
        assert backend.finish(c.id, c.token or 0, succeed())
        third = backend.enqueue(make_job(unique_key="report:42"))
        assert third.id != first.id

    def test_unique_key_is_atomic_under_concurrency(self, backend: StorageBackend, backend_factory: Callable[[], StorageBackend]) -> None:
        ids: list[str] = []
        lock = threading.Lock()

        def add() -> None:
            b = backend_factory()
            for _ in range(5):
                j = b.enqueue(make_job(unique_key="only-one"))
                with lock:
                    ids.append(j.id)

        threads = [threading.Thread(target=add) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(ids) == 30 and len(set(ids)) == 1

    def test_cancel_queued_at_once_and_running_by_request(self, backend: StorageBackend) -> None:
        queued = backend.enqueue(make_job())
        later = backend.enqueue(make_job(eta=now() + 3600))
        cancelled = backend.cancel(queued.id, "no longer needed")
        assert cancelled is not None and cancelled.state == JobState.CANCELLED
        c2 = backend.cancel(later.id)
        assert c2 is not None and c2.state == JobState.CANCELLED
        running = backend.enqueue(make_job())
        [c] = backend.claim(["default"], 5, self.lease, "w", start_now=1)
        assert c.id == running.id
        assert backend.cancel_requests([running.id]) == set()
        flagged = backend.cancel(running.id)
        assert flagged is not None and flagged.state == JobState.RUNNING and flagged.cancel_requested
        assert backend.cancel_requests([running.id, queued.id]) == {running.id}
        assert backend.cancel("missing-job") is None
        assert backend.finish(running.id, c.token or 0, Outcome(kind="cancelled", reason="stopped"))
        final = backend.get(running.id)
        assert final is not None and final.state == JobState.CANCELLED and not final.cancel_requested

    def test_retry_requeues_same_job_with_history(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job(max_retries=0))
        [c] = backend.claim(["default"], 1, self.lease, "w", start_now=1)
        err = ErrorInfo(attempt=1, type="builtins.RuntimeError", message="nope")
        assert backend.finish(job.id, c.token or 0, Outcome(kind="failed", error=err))
        again = backend.retry(job.id)
        assert again is not None and again.id == job.id and again.state == JobState.QUEUED
        [c2] = backend.claim(["default"], 1, self.lease, "w", start_now=1)
        assert c2.id == job.id and c2.attempts == 2
        assert backend.finish(job.id, c2.token or 0, succeed("second time"))
        done = backend.get(job.id)
        assert done is not None and done.state == JobState.SUCCEEDED and done.errors[0].message == "nope"
        states = [t.state for t in done.history]
        assert states.count(JobState.RUNNING) == 2 and JobState.FAILED in states
        assert backend.retry(job.id) is None  # succeeded jobs are not retried

    def test_retry_refuses_live_jobs(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        assert backend.retry(job.id) is None
        backend.claim(["default"], 1, self.lease, "w")
        assert backend.retry(job.id) is None

    def test_progress_needs_the_live_token(self, backend: StorageBackend) -> None:
        job = backend.enqueue(make_job())
        [c] = backend.claim(["default"], 1, self.lease, "w", start_now=1)
        assert backend.set_progress(job.id, c.token or 0, {"done": 3, "total": 10})
        assert backend.set_progress(job.id, (c.token or 0) + 1, {"done": 4}) is False
        got = backend.get(job.id)
        assert got is not None and got.progress == {"done": 3, "total": 10}

    # -- listing, counting, purging ----------------------------------------------------------------

    def test_query_jobs_newest_first_with_filters(self, backend: StorageBackend) -> None:
        def ids(**kw: Any) -> list[str]:
            return [j.id for j in backend.query_jobs(JobFilter(**kw)).jobs]

        a = backend.enqueue(make_job("t.a", created_at=100.0))
        b = backend.enqueue(make_job("t.b", created_at=200.0, queue="other"))
        c = backend.enqueue(make_job("t.a", created_at=300.0))
        assert ids() == [c.id, b.id, a.id]
        assert ids(task="t.a") == [c.id, a.id]
        assert ids(queue="other") == [b.id]
        assert ids(since=150.0) == [c.id, b.id]
        assert ids(until=300.0) == [b.id, a.id]
        assert ids(search="T.B") == [b.id]  # case-insensitive, task name or id
        assert ids(search=a.id[:12]) == [a.id]
        assert ids(states=frozenset()) == []
        [claimed] = backend.claim(["default"], 1, self.lease, "w")
        assert ids(states=frozenset({JobState.CLAIMED})) == [claimed.id]
        assert ids(states=frozenset({JobState.RUNNING})) == []
        assert backend.start({claimed.id: claimed.token or 0}) == {claimed.id}
        assert ids(states=frozenset({JobState.RUNNING})) == [claimed.id]

    def test_get_result_of_a_live_job_is_none(self, backend: StorageBackend) -> None:
        """The defined answer everywhere: a result exists only once the job finished."""
        if not isinstance(backend, ResultBackend):
            pytest.skip("this backend is not a result store")
        job = backend.enqueue(make_job())
        assert backend.get_result(job.id) is None
        [c] = backend.claim(["default"], 1, self.lease, "w", start_now=1)
        assert backend.get_result(job.id) is None
        assert backend.finish(job.id, c.token or 0, succeed(7))
        done = backend.get_result(job.id)
        assert done is not None and done.result == 7

    def test_query_jobs_pages_with_a_keyset_cursor(self, backend: StorageBackend, peer: StorageBackend) -> None:
        # equal creation times are ordered by id, so pages never skip or repeat a job
        made = [backend.enqueue(make_job(id=f"page-{i:02d}", created_at=500.0 + (i // 3))) for i in range(10)]
        expected = [j.id for j in sorted(made, key=lambda j: (j.created_at, j.id), reverse=True)]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = (backend if pages % 2 == 0 else peer).query_jobs(limit=4, cursor=cursor)  # a cursor works on any object
            seen += [j.id for j in page.jobs]
            pages += 1
            if page.cursor is None:
                break
            cursor = page.cursor
            backend.enqueue(make_job(created_at=10_000.0))  # newer jobs do not shift later pages
        assert seen == expected and pages == 3
        with pytest.raises(ValueError, match="invalid cursor"):
            backend.query_jobs(cursor="not-a-cursor")

    def test_counts_and_oldest(self, backend: StorageBackend) -> None:
        assert backend.oldest_queued_at() is None
        backend.enqueue(make_job(created_at=50.0))
        backend.enqueue(make_job(created_at=60.0))
        backend.enqueue(make_job(queue="other"))
        backend.enqueue(make_job(queue="other"))
        backend.claim(["other"], 2, self.lease, "w", start_now=1)
        counts = backend.counts()
        assert counts["default"]["queued"] == 2
        assert counts["other"]["running"] == 1 and counts["other"]["claimed"] == 1
        assert backend.oldest_queued_at() == 50.0

    def test_oldest_queued_spans_every_queue_and_only_queued_jobs(self, backend: StorageBackend) -> None:
        backend.enqueue(make_job(queue="a", created_at=300.0))
        backend.enqueue(make_job(queue="zz", created_at=200.0))  # the oldest queued, in the last queue by name
        backend.enqueue(make_job(queue="m", created_at=100.0))  # older, but claimed below: not queued
        backend.claim(["m"], 1, self.lease, "w")
        assert backend.oldest_queued_at() == 200.0
        backend.claim(["zz"], 1, self.lease, "w")
        assert backend.oldest_queued_at() == 300.0

    def test_purge_removes_only_old_terminal_jobs(self, backend: StorageBackend) -> None:
        done = backend.enqueue(make_job())
        failed = backend.enqueue(make_job())
        live = backend.enqueue(make_job(eta=now() + 3600))
        claimed = {j.id: j for j in backend.claim(["default"], 2, self.lease, "w")}
        backend.finish(done.id, claimed[done.id].token or 0, succeed(1))
        backend.finish(failed.id, claimed[failed.id].token or 0, Outcome(kind="failed"))
        assert backend.purge(older_than=now() - 3600) == 0
        assert backend.purge(states=[JobState.FAILED], older_than=now() + 1) == 1
        assert backend.get(failed.id) is None and backend.get(done.id) is not None
        assert backend.purge(older_than=now() + 1) == 1
        assert backend.get(done.id) is None
        assert backend.get(live.id) is not None

    # -- safety, workers, wake-ups -----------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["../x", "..\\x", "a/b", "CON", "nul.txt", "x\x00y", "z" * 65, ""])
    def test_unsafe_ids_are_refused(self, backend: StorageBackend, bad: str) -> None:
        with pytest.raises(InvalidIdError):
            backend.get(bad)
        with pytest.raises(InvalidIdError):
            backend.enqueue(make_job(id=bad))

    def test_workers_register_and_list(self, backend: StorageBackend) -> None:
        info = WorkerInfo(id="w-1", host="h", pid=1, queues=["default"], concurrency=4, executor="thread",
                          started_at=now(), heartbeat_at=now())
        backend.register_worker(info)
        backend.register_worker(info.model_copy(update={"jobs_done": 5}))
        workers = backend.list_workers()
        assert [(w.id, w.jobs_done) for w in workers] == [("w-1", 5)]

    def test_subscribers_are_woken_by_enqueue(self, backend: StorageBackend, backend_factory: Callable[[], StorageBackend]) -> None:
        rang = threading.Event()
        unsubscribe = backend.subscribe(rang.set)
        try:
            backend_factory().enqueue(make_job())
            assert rang.wait(WAIT)
        finally:
            unsubscribe()

    def test_enqueue_many_large_batch(self, backend: StorageBackend) -> None:
        jobs = backend.enqueue_many([make_job(args=[i]) for i in range(2000)])
        assert len(jobs) == 2000
        assert sum(c.get("queued", 0) for c in backend.counts().values()) == 2000
