"""The SQL transitions (queries.py) agree with the shared steps of
``nuvom_support.backend_base``: each statement's result equals the step applied
to the job read just before, at the time the server stamped."""

from __future__ import annotations

from typing import Any

import pytest
from nuvom_backend_postgres import PostgresBackend

from nuvom_kernel.models import ErrorInfo, Job, JobState, Outcome
from nuvom_kernel.testing.queue_contract import wait_for
from nuvom_support.backend_base import (
    claim_update,
    finish_update,
    release_update,
    start_update,
    sweep_update,
)


def same(got: Job | None, expected: Job) -> None:
    assert got is not None
    assert got.model_dump() == expected.model_dump()


def read(backend: PostgresBackend, job_id: str) -> Job:
    job = backend.get(job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("start", [False, True])
def test_claim_is_claim_update(backend: PostgresBackend, start: bool) -> None:
    job = backend.enqueue(Job(task="t", args=[1], priority=3))
    before = read(backend, job.id)
    [got] = backend.claim(["default"], 1, 12.5, "w-proto", start_now=int(start))
    expected = claim_update(before.snapshot(), got.token or 0, 12.5, "w-proto", got.updated_at, start=start)
    same(got, expected)
    same(read(backend, job.id), expected)


def test_start_and_release_are_the_shared_steps(backend: PostgresBackend) -> None:
    a, b = backend.enqueue(Job(task="t")), backend.enqueue(Job(task="t"))
    claimed = {j.id: j for j in backend.claim(["default"], 2, 30, "w")}
    before = read(backend, a.id)
    assert backend.start({a.id: claimed[a.id].token or 0}) == {a.id}
    after = read(backend, a.id)
    same(after, start_update(before.snapshot(), after.updated_at))
    before = read(backend, b.id)
    assert backend.release(b.id, claimed[b.id].token or 0)
    after = read(backend, b.id)
    same(after, release_update(before.snapshot(), after.updated_at))


OUTCOMES: dict[str, Any] = {
    "succeeded": lambda: Outcome(kind="succeeded", result={"x": [1, 2.5, None]}, note="done"),
    "failed": lambda: Outcome(kind="failed", error=ErrorInfo(attempt=1, type="builtins.ValueError", message="m", traceback="tb")),
    "retry-now": lambda: Outcome(kind="retry", error=ErrorInfo(attempt=1, type="E"), eta=None),
    "retry-later": lambda: Outcome(kind="retry", eta=1000.0 + 42.25, at=1000.0, note="backoff"),
    "retry-past": lambda: Outcome(kind="retry", eta=999.0, at=1000.0),
    "dead": lambda: Outcome(kind="dead", reason="unknown task 'x'"),
    "cancelled": lambda: Outcome(kind="cancelled"),
}


@pytest.mark.parametrize("kind", sorted(OUTCOMES))
@pytest.mark.parametrize("store_result", [True, False])
def test_finish_is_finish_update(backend: PostgresBackend, kind: str, store_result: bool) -> None:
    job = backend.enqueue(Job(task="t", max_retries=3, store_result=store_result))
    [c] = backend.claim(["default"], 1, 30, "w", start_now=1)
    before = read(backend, job.id)
    outcome = OUTCOMES[kind]()
    assert backend.finish(job.id, c.token or 0, outcome)
    after = read(backend, job.id)
    expected = before.snapshot()
    assert finish_update(expected, c.token or 0, outcome, after.updated_at)
    same(after, expected)


@pytest.mark.parametrize("case", ["claimed", "running", "running-dies"])
def test_sweep_is_sweep_update(backend: PostgresBackend, case: str) -> None:
    job = backend.enqueue(Job(task="t", max_lease_expiries=0 if case == "running-dies" else 3))
    backend.claim(["default"], 1, 0.05, "gone", start_now=0 if case == "claimed" else 1)
    before = read(backend, job.id)
    wait_for(lambda: (before.lease_expires_at or 0) < backend.now())
    assert backend.sweep() == 1
    after = read(backend, job.id)
    expected = sweep_update(before.snapshot(), after.updated_at)
    same(after, expected)
    assert after.state == (JobState.DEAD if case == "running-dies" else JobState.QUEUED)


def test_a_claim_of_an_expired_lease_is_sweep_then_claim(backend: PostgresBackend) -> None:
    job = backend.enqueue(Job(task="t"))
    backend.claim(["default"], 1, 0.05, "gone", start_now=1)
    before = read(backend, job.id)
    wait_for(lambda: (before.lease_expires_at or 0) < backend.now())
    [got] = backend.claim(["default"], 1, 30, "next", start_now=1)
    expected = claim_update(sweep_update(before.snapshot(), got.updated_at), got.token or 0, 30, "next",
                            got.updated_at, start=True)
    same(got, expected)
