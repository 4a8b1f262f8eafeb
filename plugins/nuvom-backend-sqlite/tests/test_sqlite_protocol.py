"""Every rule of the QueueBackend / ResultBackend protocols, on both claim paths."""

from __future__ import annotations

import threading

import nuvom_backend_sqlite.backend as backend_module
import pytest
from nuvom_backend_sqlite import SqliteBackend

from nuvom_kernel.contracts import Completion, JobFilter, QueueBackend, ResultBackend
from nuvom_kernel.errors import InvalidIdError, InvalidStateError
from nuvom_kernel.models import ErrorInfo, Job, JobState, Outcome, WorkerInfo, now

OK = Outcome(kind="succeeded", result={"v": 1})


def claim_one(b: SqliteBackend, queue: str = "default", lease: float = 30.0, start: bool = True) -> Job:
    jobs = b.claim([queue], 1, lease, "w1", start_now=1 if start else 0)
    assert len(jobs) == 1
    return jobs[0]


def test_implements_both_protocols(backend: SqliteBackend) -> None:
    assert isinstance(backend, QueueBackend)
    assert isinstance(backend, ResultBackend)


def test_enqueue_is_durable_and_readable_from_another_object(backend: SqliteBackend) -> None:
    job = backend.enqueue(Job(task="t", args=[1, "x"], kwargs={"k": [1]}))
    assert job.state == JobState.QUEUED
    other = SqliteBackend(backend.path)
    try:
        stored = other.get(job.id)
        assert stored is not None
        assert (stored.task, stored.args, stored.kwargs, stored.state) == ("t", [1, "x"], {"k": [1]}, JobState.QUEUED)
    finally:
        other.close()
    assert backend.get("missing") is None


def test_unsafe_ids_and_queue_names_are_refused(backend: SqliteBackend) -> None:
    for bad in ("../x", "a/b", "CON", "x" * 65):
        with pytest.raises(InvalidIdError):
            backend.enqueue(Job(id=bad, task="t"))
    with pytest.raises(InvalidIdError):
        backend.enqueue(Job(task="t", queue="a b"))
    assert backend.counts() == {}


def test_eta_in_future_is_scheduled_and_claimable_once_due(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    eta = now() + 3600
    job = backend.enqueue(Job(task="t", eta=eta))
    assert job.state == JobState.SCHEDULED
    assert backend.claim(["default"], 5, 30, "w", start_now=1000) == []
    monkeypatch.setattr(backend_module, "now", lambda: eta + 1)
    claimed = backend.claim(["default"], 5, 30, "w", start_now=1000)
    assert [j.id for j in claimed] == [job.id]
    assert claimed[0].state == JobState.RUNNING


def test_unique_key_dedupes_while_live(backend: SqliteBackend) -> None:
    first = backend.enqueue(Job(task="t", unique_key="k1"))
    again = backend.enqueue(Job(task="t", unique_key="k1"))
    assert again.id == first.id
    batch = backend.enqueue_many([Job(task="t", unique_key="k2"), Job(task="t", unique_key="k2"), Job(task="t", unique_key="k1")])
    assert batch[0].id == batch[1].id and batch[2].id == first.id
    assert sum(backend.counts()["default"].values()) == 2
    running = claim_one(backend)
    assert backend.enqueue(Job(task="t", unique_key=running.unique_key)).id == running.id
    assert backend.finish(running.id, running.token or 0, OK)
    fresh = backend.enqueue(Job(task="t", unique_key=running.unique_key))
    assert fresh.id != running.id and fresh.state == JobState.QUEUED


def test_enqueue_of_an_existing_id_returns_the_stored_job(backend: SqliteBackend) -> None:
    job = backend.enqueue(Job(id="same", task="t", args=[1]))
    again = backend.enqueue_many([Job(id="same", task="t", args=[2]), Job(id="other", task="t")])
    assert again[0].args == [1] and again[1].id == "other"
    stored = backend.get("same")
    assert stored is not None and stored.args == [1] and stored.created_at == job.created_at


def test_claim_order_priority_then_fifo_and_limit(backend: SqliteBackend) -> None:
    base = now() - 100
    ids = {}
    for name, prio, created in [("low-old", 0, base), ("high-new", 5, base + 3), ("high-old", 5, base + 1), ("low-new", 0, base + 2)]:
        ids[name] = backend.enqueue(Job(id=name, task="t", priority=prio, created_at=created)).id
    backend.enqueue(Job(id="eta-early", task="t", priority=0, created_at=base + 10, eta=base + 0.5))
    got = [j.id for j in backend.claim(["default"], 3, 30, "w", start_now=1000)]
    assert got == ["high-old", "high-new", "low-old"]
    assert [j.id for j in backend.claim(["default"], 10, 30, "w", start_now=1000)] == ["eta-early", "low-new"]
    assert backend.claim(["default"], 10, 30, "w", start_now=1000) == []


def test_claim_merges_several_queues_and_ignores_others(backend: SqliteBackend) -> None:
    base = now() - 10
    backend.enqueue(Job(id="a1", task="t", queue="a", created_at=base + 1))
    backend.enqueue(Job(id="b1", task="t", queue="b", created_at=base))
    backend.enqueue(Job(id="b2", task="t", queue="b", priority=9, created_at=base + 5))
    backend.enqueue(Job(id="c1", task="t", queue="c", priority=99))
    assert [j.id for j in backend.claim(["a", "b", "a"], 10, 30, "w", start_now=1000)] == ["b2", "b1", "a1"]
    assert [j.id for j in backend.claim(["c"], 0, 30, "w", start_now=1000)] == []


def test_claim_sets_lease_token_attempts(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="j", task="t", max_retries=5))
    before = now()
    job = claim_one(backend, lease=30)
    assert job.state == JobState.RUNNING and job.attempts == 1 and job.worker_id == "w1"
    assert job.lease_expires_at is not None and job.lease_expires_at >= before + 30
    stored = backend.get("j")
    assert stored is not None and stored.token == job.token and stored.state == JobState.RUNNING
    assert stored.lease_expires_at == job.lease_expires_at


def test_tokens_strictly_increase_across_attempts(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="j", task="t", max_retries=10))
    tokens = []
    job = claim_one(backend, start=False)
    tokens.append(job.token)
    assert backend.release("j", job.token or 0)
    job = claim_one(backend, lease=-1)
    tokens.append(job.token)
    assert backend.sweep() == 1
    job = claim_one(backend)
    tokens.append(job.token)
    assert backend.finish("j", job.token or 0, Outcome(kind="failed", error=ErrorInfo(type="E")))
    backend.retry("j")
    tokens.append(claim_one(backend).token)
    assert all(isinstance(t, int) for t in tokens)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_finish_is_fenced_by_the_live_token(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="j", task="t"))
    with pytest.raises(InvalidIdError):
        backend.get("../j")
    assert not backend.finish("j", 1, OK)  # queued, not running
    job = claim_one(backend)
    token = job.token or 0
    assert not backend.finish("j", token + 1000, OK)
    assert backend.get("j").state == JobState.RUNNING  # type: ignore[union-attr]
    assert backend.finish("j", token, OK)
    assert not backend.finish("j", token, Outcome(kind="failed"))
    stored = backend.get("j")
    assert stored is not None and stored.state == JobState.SUCCEEDED and stored.result == {"v": 1}
    assert stored.token is None and stored.finished_at is not None
    assert not backend.finish("missing", 1, OK)


def test_retry_outcome_requeues_now_or_at_eta(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="now", task="t", max_retries=3))
    backend.enqueue(Job(id="later", task="t", max_retries=3))
    jobs = {j.id: j for j in backend.claim(["default"], 2, 30, "w", start_now=1000)}
    err = ErrorInfo(type="ValueError", message="boom")
    assert backend.finish("now", jobs["now"].token or 0, Outcome(kind="retry", error=err))
    assert backend.finish("later", jobs["later"].token or 0, Outcome(kind="retry", eta=now() + 3600))
    assert backend.get("later").state == JobState.SCHEDULED  # type: ignore[union-attr]
    again = backend.claim(["default"], 5, 30, "w", start_now=1000)
    assert [j.id for j in again] == ["now"]
    assert again[0].attempts == 2 and again[0].errors[0].message == "boom"


def test_exchange_finishes_and_claims_in_one_call(backend: SqliteBackend) -> None:
    backend.enqueue_many([Job(id=f"j{i}", task="t", created_at=now() - 10 + i) for i in range(5)])
    first = backend.claim(["default"], 2, 30, "w", start_now=1000)
    completions = [Completion(j.id, j.token or 0, OK) for j in first]
    completions.append(Completion(first[0].id, first[0].token or 0, OK))  # a duplicate report
    completions.append(Completion("j4", 12345, OK))  # not running
    accepted, claimed, _ = backend.exchange(completions, ["default"], 2, 30, "w")
    assert accepted == [True, True, False, False]
    assert [j.id for j in claimed] == ["j2", "j3"]
    assert backend.exchange([], ["default"], 0, 30, "w") == ([], [], set())
    assert backend.get("j0").state == JobState.SUCCEEDED  # type: ignore[union-attr]


def test_renew_extends_held_leases_and_reports_lost_ones(backend: SqliteBackend) -> None:
    backend.enqueue_many([Job(id="a", task="t"), Job(id="b", task="t")])
    a, b = backend.claim(["default"], 2, 1, "w", start_now=1000)
    assert backend.finish(b.id, b.token or 0, OK)
    lost = backend.renew({a.id: a.token or 0, b.id: b.token or 0, "gone": 1}, 600)
    assert lost == {b.id, "gone"}
    stored = backend.get(a.id)
    assert stored is not None and stored.lease_expires_at is not None and stored.lease_expires_at > now() + 500
    assert backend.renew({a.id: (a.token or 0) + 1}, 600) == {a.id}
    assert backend.renew({}, 10) == set()


def test_release_returns_job_without_counting_the_attempt(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="j", task="t"))
    job = claim_one(backend, start=False)
    assert not backend.release("j", (job.token or 0) + 1)
    assert backend.release("j", job.token or 0)
    stored = backend.get("j")
    assert stored is not None and stored.state == JobState.QUEUED and stored.attempts == 0 and stored.token is None
    assert not backend.release("j", job.token or 0)
    assert claim_one(backend).attempts == 1


def test_sweep_requeues_expired_leases_and_kills_exhausted_jobs(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="retryable", task="t", max_retries=1, max_lease_expiries=1))
    backend.enqueue(Job(id="healthy", task="t"))
    assert backend.sweep() == 0
    expired = backend.claim(["default"], 1, -1, "w-dead", start_now=1000)
    healthy = backend.claim(["default"], 1, 600, "w-ok", start_now=1000)
    assert [j.id for j in expired] == ["retryable"] and [j.id for j in healthy] == ["healthy"]
    assert backend.sweep() == 1
    stored = backend.get("retryable")
    assert stored is not None and stored.state == JobState.QUEUED
    assert (stored.attempts, stored.lease_expiries) == (0, 1)  # the worker's death used no retry
    assert not backend.finish("retryable", expired[0].token or 0, OK)  # the stale worker is fenced off
    [again] = backend.claim(["default"], 1, -1, "w-dead", start_now=1000)
    # redelivered after a lease expiry: claimed only, started by the worker on a free slot
    assert again.state == JobState.CLAIMED and backend.start({"retryable": again.token or 0}) == {"retryable"}
    assert backend.sweep() == 1
    dead = backend.get("retryable")
    assert dead is not None and dead.state == JobState.DEAD and "lease expired" in (dead.reason or "")
    assert backend.get("healthy").state == JobState.RUNNING  # type: ignore[union-attr]


def test_query_jobs_newest_first_with_filters_and_cursor(backend: SqliteBackend) -> None:
    base = now() - 100
    for i in range(6):
        backend.enqueue(Job(id=f"j{i}", task="even" if i % 2 == 0 else "odd", queue="a" if i < 3 else "b", created_at=base + i))
    backend.claim(["a"], 1, 30, "w", start_now=1000)

    def ids(limit: int = 50, cursor: str | None = None, **kw: object) -> list[str]:
        return [j.id for j in backend.query_jobs(JobFilter(**kw), limit=limit, cursor=cursor).jobs]  # type: ignore[arg-type]

    assert ids() == ["j5", "j4", "j3", "j2", "j1", "j0"]
    first = backend.query_jobs(limit=2)
    assert [j.id for j in first.jobs] == ["j5", "j4"] and first.cursor is not None
    assert ids(limit=2, cursor=first.cursor) == ["j3", "j2"]
    assert ids(task="even") == ["j4", "j2", "j0"]
    assert ids(queue="a", states=frozenset({JobState.QUEUED})) == ["j2", "j1"]
    assert ids(states=frozenset({JobState.RUNNING})) == ["j0"]
    assert ids(since=base + 4) == ["j5", "j4"]
    assert ids(search="%") == [] and ids(search="j_") == []  # LIKE wildcards are literal
    assert ids(states=frozenset()) == []


def test_cancel_queued_running_and_finished(backend: SqliteBackend) -> None:
    backend.enqueue_many([Job(id="q", task="t"), Job(id="r", task="t", created_at=now() - 5), Job(id="s", task="t", eta=now() + 99)])
    running = claim_one(backend)
    assert running.id == "r"
    cancelled = backend.cancel("q", "no longer needed")
    assert cancelled is not None and cancelled.state == JobState.CANCELLED and cancelled.reason == "no longer needed"
    assert backend.cancel("s").state == JobState.CANCELLED  # type: ignore[union-attr]
    flagged = backend.cancel("r")
    assert flagged is not None and flagged.state == JobState.RUNNING and flagged.cancel_requested
    assert backend.get("r").cancel_requested  # type: ignore[union-attr]
    assert backend.finish("r", running.token or 0, Outcome(kind="cancelled"))
    assert backend.cancel("r").state == JobState.CANCELLED  # type: ignore[union-attr]
    assert backend.cancel("missing") is None
    assert backend.claim(["default"], 10, 30, "w", start_now=1000) == []


def test_operator_retry_keeps_id_and_history(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="j", task="t"))
    job = claim_one(backend)
    backend.finish("j", job.token or 0, Outcome(kind="failed", error=ErrorInfo(type="E")))
    retried = backend.retry("j")
    assert retried is not None and retried.state == JobState.QUEUED and retried.id == "j"
    assert [t.state for t in retried.history][-2:] == [JobState.FAILED, JobState.QUEUED]
    again = claim_one(backend)
    assert again.attempts == 2 and again.attempts <= again.max_attempts
    assert backend.retry("j") is None  # running: not retryable
    assert backend.retry("missing") is None


def test_set_progress_needs_the_live_token(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="j", task="t"))
    job = claim_one(backend)
    assert backend.set_progress("j", job.token or 0, {"done": 3})
    assert not backend.set_progress("j", (job.token or 0) + 1, {"done": 4})
    stored = backend.get("j")
    assert stored is not None and stored.progress == {"done": 3} and stored.lease_expires_at == job.lease_expires_at
    assert not backend.set_progress("missing", 1, 1)


def test_counts_and_oldest_queued_at(backend: SqliteBackend) -> None:
    assert backend.counts() == {} and backend.oldest_queued_at() is None
    base = now() - 50
    backend.enqueue_many([Job(task="t", queue="a", created_at=base + i) for i in range(3)])
    backend.enqueue(Job(task="t", queue="b", created_at=base - 1, eta=now() + 99))
    claim_one(backend, "a")
    assert backend.counts() == {"a": {"queued": 2, "running": 1}, "b": {"scheduled": 1}}
    assert backend.oldest_queued_at() == base + 1


def test_purge_deletes_only_finished_jobs(backend: SqliteBackend) -> None:
    backend.enqueue_many([Job(id=f"j{i}", task="t", created_at=now() - 10 + i) for i in range(4)])
    jobs = backend.claim(["default"], 3, 30, "w", start_now=1000)
    backend.finish(jobs[0].id, jobs[0].token or 0, OK)
    backend.finish(jobs[1].id, jobs[1].token or 0, Outcome(kind="failed"))
    assert backend.purge(older_than=now() - 3600) == 0
    assert backend.purge(states=[JobState.FAILED, JobState.QUEUED, JobState.RUNNING]) == 1
    assert backend.purge(older_than=now() + 1) == 1
    assert sorted(j.id for j in backend.query_jobs().jobs) == ["j2", "j3"]
    assert backend.purge() == 0


def test_purge_works_in_batches(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    import nuvom_backend_sqlite.admin as admin

    monkeypatch.setattr(admin, "_PURGE_BATCH", 7)
    at = now()
    for i in range(20):
        backend.save(Job(id=f"done{i}", task="t", state=JobState.SUCCEEDED, finished_at=at - 10))
    backend.enqueue(Job(id="live", task="t"))
    assert backend.purge() == 20
    assert [j.id for j in backend.query_jobs().jobs] == ["live"]


def test_result_role_save_get_purge(backend: SqliteBackend) -> None:
    job = Job(id="r1", task="t", state=JobState.SUCCEEDED, result=[1, 2], finished_at=now() - 100)
    backend.save(job)
    job.result = [3]
    backend.save(job)
    got = backend.get_result("r1")
    assert got is not None and got.result == [3]
    assert backend.get_result("nope") is None
    assert backend.purge(older_than=now()) == 1 and backend.get_result("r1") is None


def test_subscribe_is_called_on_enqueue_release_and_retry(backend: SqliteBackend) -> None:
    rang = threading.Event()
    unsubscribe = backend.subscribe(rang.set)
    backend.enqueue(Job(id="j", task="t"))
    assert rang.wait(10)
    rang.clear()
    job = claim_one(backend, start=False)
    backend.release("j", job.token or 0)
    assert rang.wait(10)
    rang.clear()
    job = claim_one(backend)
    backend.finish("j", job.token or 0, Outcome(kind="failed"))
    assert not rang.is_set()
    backend.retry("j")
    assert rang.wait(10)
    unsubscribe()
    rang.clear()
    backend.enqueue(Job(task="t"))
    assert not rang.is_set()


def test_workers_registry(backend: SqliteBackend) -> None:
    at = now()
    info = WorkerInfo(id="w1", host="h", pid=1, queues=["default"], concurrency=4, executor="thread", started_at=at, heartbeat_at=at)
    backend.register_worker(info)
    info.heartbeat_at = at + 5
    info.jobs_done = 3
    backend.register_worker(info)
    backend.register_worker(info.model_copy(update={"id": "w0"}))
    workers = backend.list_workers()
    assert [w.id for w in workers] == ["w0", "w1"] and workers[1].jobs_done == 3


def test_corrupt_row_is_quarantined_and_claims_go_on(backend: SqliteBackend) -> None:
    backend.enqueue_many([Job(id="bad", task="t", created_at=now() - 5), Job(id="good", task="t")])
    conn = backend.db.connection()
    conn.execute("UPDATE jobs SET data = '{not json' WHERE id = 'bad'")
    assert backend.get("bad").state == JobState.DEAD  # type: ignore[union-attr]
    assert [j.id for j in backend.claim(["default"], 10, 30, "w", start_now=1000)] == ["good"]
    dead = backend.get("bad")
    assert dead is not None and dead.state == JobState.DEAD and "quarantined" in (dead.reason or "")
    assert conn.execute("SELECT id, data FROM quarantine").fetchall() == [("bad", "{not json")]
    assert backend.claim(["default"], 10, 30, "w", start_now=1000) == []


def test_row_whose_json_names_another_job_is_quarantined(backend: SqliteBackend) -> None:
    # Found by tests/reliability (R7): such a row made one claim hand out the
    # other job twice (two tokens) and stayed `running` forever.
    backend.enqueue_many([Job(id="other", task="t", created_at=now() - 5)])
    conn = backend.db.connection()
    data = conn.execute("SELECT data FROM jobs WHERE id = 'other'").fetchone()[0]
    conn.execute("INSERT INTO jobs (id, state, queue, priority, ready_at, created_at, task, data) "
                 "VALUES ('copy', 'queued', 'default', 0, ?, ?, 't', ?)", (now() - 10, now() - 10, data))
    claimed = backend.claim(["default"], 10, 30, "w", start_now=1000)
    assert [(j.id, j.attempts) for j in claimed] == [("other", 1)]
    copy = backend.get("copy")
    assert copy is not None and copy.state == JobState.DEAD and "another job" in (copy.reason or "")
    assert conn.execute("SELECT state FROM jobs WHERE id = 'copy'").fetchone()[0] == "dead"
    assert conn.execute("SELECT id FROM quarantine").fetchall() == [("copy",)]
    assert backend.sweep() == 0


def test_retry_refused_when_the_unique_key_is_taken_again(backend: SqliteBackend) -> None:
    backend.enqueue(Job(id="first", task="t", unique_key="u"))
    job = claim_one(backend)
    backend.finish(job.id, job.token or 0, Outcome(kind="failed"))
    backend.enqueue(Job(id="second", task="t", unique_key="u"))
    with pytest.raises(InvalidStateError, match="unique key"):
        backend.retry("first")
    assert backend.get("first").state == JobState.FAILED  # type: ignore[union-attr]


def test_claim_statement_agrees_with_the_shared_steps(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim's SQL mirrors claim_update / start_update: same fields, same
    history entries (to the last digit of the time), on both claim paths."""
    from nuvom_support.backend_base import claim_update

    backend.enqueue_many([Job(id=f"j{i}", task="t", priority=-i, args=[i]) for i in range(3)])
    before = {job.id: job for job in (backend.get(f"j{i}") for i in range(3)) if job is not None}
    at = now() + 0.123456789
    monkeypatch.setattr(backend_module, "now", lambda: at)
    worker = 'w "quoted" \\ é'
    claimed = backend.claim(["default"], 3, 30, worker, start_now=2)
    assert [j.id for j in claimed] == ["j0", "j1", "j2"]
    first = claimed[0].token or 0
    for offset, job in enumerate(claimed):
        expected = claim_update(before[job.id].snapshot(), first + offset, 30, worker, at, start=offset < 2)
        assert job == expected
        assert backend.get(job.id) == expected
    assert [j.history[-1].note for j in claimed] == [f"attempt 1 by {worker}"] * 2 + [f"claimed by {worker}"]


@pytest.mark.parametrize("column, value", [
    ("history", '[{"state": 5}]'), ("history", b"\xff\xfe not utf-8"), ("errors", "[1, 2"),
    ("result", "{bad"), ("lease_expiries", b"\x00"), ("progress", b"\x80"),
])
def test_a_corrupt_column_is_quarantined(backend: SqliteBackend, column: str, value: object) -> None:
    """Found by R7: a blob in history made the claim splice non-UTF-8 text
    that no reader could fetch, and every claim failed."""
    backend.enqueue_many([Job(id="bad", task="t", created_at=now() - 5), Job(id="good", task="t")])
    conn = backend.db.connection()
    conn.execute(f"UPDATE jobs SET {column} = ? WHERE id = 'bad'", (value,))
    assert [j.id for j in backend.claim(["default"], 10, 30, "w", start_now=1000)] == ["good"]
    dead = backend.get("bad")
    assert dead is not None and dead.state == JobState.DEAD and "quarantined" in (dead.reason or "")
    assert [row[0] for row in conn.execute("SELECT id FROM quarantine")] == ["bad"]


def test_exchange_finishes_before_it_starts(backend: SqliteBackend) -> None:
    """One read and one write serve both: a job finished in the call is no
    longer claimed, so its start in the same call is refused."""
    backend.enqueue_many([Job(id="a", task="t", created_at=now() - 2), Job(id="b", task="t", created_at=now() - 1)])
    a, b = backend.claim(["default"], 2, 30, "w")
    dead = Outcome(kind="dead", reason="unknown task")
    out = backend.exchange([Completion("a", a.token or 0, dead)], [], 0, 30, "w",
                           starts={"a": a.token or 0, "b": b.token or 0})
    assert out.accepted == [True] and out.started == {"b"}
    got_a, got_b = backend.get("a"), backend.get("b")
    assert got_a is not None and got_a.state == JobState.DEAD and got_a.attempts == 0
    assert [t.state for t in got_a.history] == [JobState.QUEUED, JobState.CLAIMED, JobState.DEAD]
    assert got_b is not None and got_b.state == JobState.RUNNING and got_b.attempts == 1
    assert [t.state for t in got_b.history] == [JobState.QUEUED, JobState.CLAIMED, JobState.RUNNING]


@pytest.mark.parametrize("outcome, store_result", [
    (Outcome(kind="succeeded", result={"v": [1, "é"]}, note="ok"), True),
    (Outcome(kind="succeeded", result={"v": 1}), False),
    (Outcome(kind="succeeded"), True),
    (Outcome(kind="failed", error=ErrorInfo(attempt=1, type="builtins.ValueError", message="m", traceback="tb"),
             note="no retries left"), True),
    (Outcome(kind="dead", reason="unknown task 'x'",
             error=ErrorInfo(attempt=1, type="nuvom.UnknownTask", message="unknown task 'x'")), True),
    (Outcome(kind="dead"), True),
    (Outcome(kind="cancelled", reason="cancelled while running"), True),
    (Outcome(kind="cancelled"), True),
])
def test_finish_statement_agrees_with_the_shared_steps(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch,
                                                       outcome: Outcome, store_result: bool) -> None:
    """A terminal outcome is written without decoding the job (FINISH_SQL);
    the stored job is the one finish_update makes, to the last digit."""
    from nuvom_support.backend_base import finish_update

    backend.enqueue(Job(id="j", task="t", args=[1], store_result=store_result, result=None))
    job = claim_one(backend)
    backend.cancel("j")  # a running job is only flagged: finishing clears the flag
    before = backend.get("j")
    assert before is not None and before.cancel_requested
    at = now() + 0.123456789
    monkeypatch.setattr(backend_module, "now", lambda: at)
    out = backend.exchange([Completion("j", job.token or 0, outcome), Completion("j", job.token or 0, outcome)],
                           [], 0, 30, "w")
    assert out.accepted == [True, False]  # the second report of one attempt is refused
    expected = before.snapshot()
    assert finish_update(expected, job.token or 0, outcome, at)
    assert backend.get("j") == expected
