"""The worker end to end, through the public API, on every installed backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import make_app, running_worker

import nuvom
import nuvom.sdk
from nuvom import JobState, Retry, current_job, task
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import JobFailedError, PayloadError
from nuvom_kernel.models import Job

calls: dict[str, int] = {}
calls_lock = threading.Lock()


def bump(key: str) -> int:
    with calls_lock:
        calls[key] = calls.get(key, 0) + 1
        return calls[key]


class CustomError(Exception):
    pass


@task(name="e2e.add")
def add(a: int, b: int) -> int:
    return a + b


@task(name="e2e.fail_always", retries=2, retry_delay_secs=0)
def fail_always(key: str) -> None:
    n = bump(key)
    raise CustomError(f"attempt {n} failed")


@task(name="e2e.flaky", retries=3, retry_delay_secs=0)
def flaky(key: str, succeed_on: int) -> str:
    n = bump(key)
    if n < succeed_on:
        raise RuntimeError(f"not yet ({n})")
    return f"ok on {n}"


@task(name="e2e.ask_retry", retries=1)
def ask_retry(key: str) -> int:
    n = bump(key)
    if n == 1:
        raise Retry(delay=0)
    return n


@task(name="e2e.retry_on", retries=3, retry_delay_secs=0, retry_on=(KeyError,))
def only_key_errors(key: str, kind: str) -> None:
    bump(key)
    raise (KeyError("k") if kind == "key" else ValueError("v"))


@task(name="e2e.sleepy", timeout_secs=0.3, timeout_policy="fail")
def sleepy(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not current_job().is_cancelled():
        time.sleep(0.01)
    return "late"


@task(name="e2e.sleepy_ignore", timeout_secs=0.3, timeout_policy="ignore")
def sleepy_ignore() -> str:
    time.sleep(1.0)
    return "late"


@task(name="e2e.async_add")
async def async_add(a: int, b: int) -> int:
    import asyncio

    await asyncio.sleep(0)
    return a + b


@task(name="e2e.progress")
def with_progress(n: int) -> int:
    for i in range(n):
        current_job().set_progress({"done": i + 1, "total": n})
    return n


@task(name="e2e.unserialisable")
def unserialisable() -> object:
    return object()


@task(name="e2e.gate")
def gate(path: str) -> str:
    deadline = time.monotonic() + 30
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return "through"


hook_log: list[str] = []


def _before() -> None:
    hook_log.append("before")


def _after(result: Any) -> None:
    hook_log.append(f"after:{result}")


def _on_error(exc: BaseException) -> None:
    hook_log.append(f"error:{type(exc).__name__}")


def _broken_hook(*args: Any) -> None:
    raise RuntimeError("hook exploded")


@task(name="e2e.hooked", before_job=_before, after_job=_after, on_error=_on_error)
def hooked(fail: bool) -> str:
    if fail:
        raise ValueError("asked to fail")
    return "fine"


@task(name="e2e.broken_hooks", before_job=_broken_hook, after_job=_broken_hook)
def broken_hooks() -> str:
    return "unaffected"


def test_result_round_trip(app: Nuvom) -> None:
    with running_worker(app):
        assert add.delay(2, 3).result(timeout=30) == 5
        handles = add.map([(i, i) for i in range(50)])
        assert [h.result(timeout=30) for h in handles] == [2 * i for i in range(50)]


def test_inline_call_runs_here() -> None:
    assert add(1, 1) == 2


def test_failure_raises_the_task_error_with_every_attempt_recorded(app: Nuvom, request: pytest.FixtureRequest) -> None:
    key = request.node.nodeid
    with running_worker(app):
        handle = fail_always.delay(key)
        with pytest.raises(CustomError, match="attempt 3 failed") as info:
            handle.result(timeout=30)
    assert isinstance(info.value.__cause__, JobFailedError)
    job = handle.job()
    assert job.state == JobState.FAILED and job.attempts == 3
    assert [e.message for e in job.errors] == ["attempt 1 failed", "attempt 2 failed", "attempt 3 failed"]
    assert all("CustomError" in e.traceback for e in job.errors)


def test_retries_until_success(app: Nuvom, request: pytest.FixtureRequest) -> None:
    key = request.node.nodeid
    with running_worker(app):
        assert flaky.delay(key, 3).result(timeout=30) == "ok on 3"


def test_raise_retry_and_retry_on(app: Nuvom, request: pytest.FixtureRequest) -> None:
    key = request.node.nodeid
    with running_worker(app):
        assert ask_retry.delay(key + "r").result(timeout=30) == 2
        h = only_key_errors.delay(key + "v", "value")
        with pytest.raises(ValueError):
            h.result(timeout=30)
        assert h.job().attempts == 1  # ValueError is not in retry_on
        h2 = only_key_errors.delay(key + "k", "key")
        with pytest.raises(KeyError):
            h2.result(timeout=30)
        assert h2.job().attempts == 4


def test_soft_timeout_fail_and_ignore(app: Nuvom) -> None:
    with running_worker(app):
        h = sleepy.delay(5)
        with pytest.raises(nuvom.JobTimeoutError):
            h.result(timeout=30)
        job = h.job()
        # R8, measured from the attempt's start (not from enqueue, which adds claim and poll
        # latency on a loaded machine): timeout + 1 s, with slack
        assert job.started_at is not None and job.finished_at is not None
        assert job.finished_at - job.started_at < 0.3 + 1 + 2
        assert job.state == JobState.FAILED and job.errors[-1].timed_out
        ignored = sleepy_ignore.delay()
        assert ignored.result(timeout=30) is None
        rec = ignored.job()
        assert rec.state == JobState.SUCCEEDED and rec.errors[-1].timed_out
        assert "timeout_policy=ignore" in (rec.history[-1].note or "")


def test_async_tasks_mix_with_sync(app: Nuvom) -> None:
    with running_worker(app):
        hs = [async_add.delay(i, 1) for i in range(10)] + [add.delay(i, 1) for i in range(10)]
        assert sorted(h.result(timeout=30) for h in hs) == sorted([i + 1 for i in range(10)] * 2)


def test_progress_is_visible(app: Nuvom) -> None:
    with running_worker(app):
        h = with_progress.delay(5)
        assert h.result(timeout=30) == 5
    assert h.job().progress == {"done": 5, "total": 5}


def test_unserialisable_result_fails_clearly(app: Nuvom) -> None:
    with running_worker(app):
        h = unserialisable.delay()
        with pytest.raises(PayloadError, match="cannot be serialised"):
            h.result(timeout=30)


def test_unserialisable_args_refused_at_enqueue(app: Nuvom) -> None:
    with pytest.raises(PayloadError, match="arguments of task 'e2e.add'"):
        add.delay(object(), 1)
    small = make_app("memory", Path("."), max_payload_bytes=1024)
    with pytest.raises(PayloadError, match="over the limit of 1024 bytes"):
        add.options(app=small).delay("x" * 2000, 1)


def test_unknown_task_is_dead_lettered(app: Nuvom) -> None:
    job = app.enqueue(Job(task="e2e.never_defined"))
    with running_worker(app):
        h = nuvom.JobHandle(job.id, app)
        with pytest.raises(nuvom.JobDeadError, match="unknown task"):
            h.result(timeout=30)


def test_dotted_path_in_payload_is_never_imported(app: Nuvom) -> None:
    job = app.enqueue(Job(task="os.system", args=["echo pwned"]))
    with running_worker(app):
        final = nuvom.JobHandle(job.id, app).wait(timeout=30)
    assert final.state == JobState.DEAD and "unknown task" in (final.reason or "")


def test_per_task_hooks_and_broken_hooks(app: Nuvom) -> None:
    hook_log.clear()
    with running_worker(app, concurrency=1):
        assert hooked.delay(False).result(timeout=30) == "fine"
        with pytest.raises(ValueError):
            hooked.delay(True).result(timeout=30)
        assert broken_hooks.delay().result(timeout=30) == "unaffected"
    assert hook_log == ["before", "after:fine", "before", "error:ValueError"]


def test_priorities_and_eta(app: Nuvom, tmp_path: Path) -> None:
    low = add.options(priority=0).delay(0, 0)
    high = add.options(priority=9).delay(9, 9)
    later = add.options(countdown=0.5).delay(1, 1)
    assert later.status() == JobState.SCHEDULED
    with running_worker(app, concurrency=1):
        assert later.result(timeout=30) == 2
        assert high.result(timeout=30) == 18 and low.result(timeout=30) == 0
    assert high.job().started_at <= low.job().started_at  # type: ignore[operator]
    assert later.job().started_at >= later.job().created_at + 0.5  # type: ignore[operator]


def test_named_queues(app: Nuvom) -> None:
    other = add.options(queue="reports").delay(1, 2)
    with running_worker(app, queues=["default"]):
        assert add.delay(1, 1).result(timeout=30) == 2
        assert other.status() == JobState.QUEUED
    with running_worker(app, queues=["default", "reports"]):
        assert other.result(timeout=30) == 3


def test_unique_jobs(app: Nuvom, tmp_path: Path) -> None:
    g = str(tmp_path / "open")
    first = gate.options(unique_key="nightly").delay(g)
    second = gate.options(unique_key="nightly").delay(g)
    assert second.id == first.id
    with running_worker(app):
        Path(g).touch()
        assert first.result(timeout=30) == "through"
    third = gate.options(unique_key="nightly").delay(g)
    assert third.id != first.id


def test_cancel_queued_job(app: Nuvom) -> None:
    h = add.options(countdown=3600).delay(1, 1)
    cancelled = nuvom.sdk.cancel_job(h.id, app=app)
    assert cancelled.state == JobState.CANCELLED
    with pytest.raises(nuvom.JobCancelledError):
        h.result(timeout=5)


def test_graceful_stop_with_jobs_in_flight(app: Nuvom, tmp_path: Path) -> None:
    g = tmp_path / "release"
    handles = [gate.delay(str(g)) for _ in range(4)] + [add.delay(i, 0) for i in range(20)]
    worker_done = threading.Event()
    with running_worker(app, concurrency=4) as worker:
        deadline = time.monotonic() + 30
        while len(worker.held_job_ids()) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.request_stop()
        g.touch()  # the running gates may finish now; the worker must not claim more
        worker_done.set()
    states = [h.job() for h in handles]
    ran = [j for j in states if j.state == JobState.SUCCEEDED]
    waiting = [j for j in states if j.state == JobState.QUEUED]
    assert len(ran) + len(waiting) == len(handles)  # nothing lost, nothing stuck running
    assert all(j.attempts == 1 for j in ran) and all(j.attempts == 0 for j in waiting)
    with running_worker(app):
        assert sorted(h.result(timeout=30) for h in handles[4:]) == list(range(20))
    assert all(h.job().attempts == 1 for h in handles)  # each ran exactly once


def test_dead_workers_jobs_are_redelivered_after_the_lease(backend_name: str, tmp_path: Path) -> None:
    app = make_app(backend_name, tmp_path, lease_secs=1.0, sweep_interval_secs=0.1)  # the shortest lease allowed
    g = tmp_path / "never"
    job = gate.options(app=app).delay(str(g))  # default retries=0: a death uses none
    with running_worker(app, concurrency=1) as first:
        deadline = time.monotonic() + 30
        while not first.held_job_ids() and time.monotonic() < deadline:
            time.sleep(0.01)
        first.request_stop(hard=True)  # abandon the running job: its lease is not renewed
    g.touch()
    with running_worker(app):
        assert job.result(timeout=30) == "through"
    final = job.job()
    assert (final.attempts, final.lease_expiries) == (1, 1)
    assert any("lease expired" in (t.note or "") for t in final.history)


@task(name="e2e.cooperative")
def cooperative(path: str) -> str:
    Path(path).touch()
    deadline = time.monotonic() + 60
    while not current_job().is_cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "stopped early"


@task(name="e2e.async_forever")
async def async_forever(path: str) -> None:
    import asyncio

    Path(path).touch()
    await asyncio.sleep(60)


def _wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_cancel_running_jobs(app: Nuvom, tmp_path: Path) -> None:
    with running_worker(app):
        started = tmp_path / "thread-started"
        h = cooperative.delay(str(started))
        _wait_for_file(started)
        assert nuvom.sdk.cancel_job(h.id, app=app).cancel_requested
        final = h.wait(timeout=30)
        assert final.state == JobState.CANCELLED and final.result is None
        astarted = tmp_path / "async-started"
        ah = async_forever.delay(str(astarted))
        _wait_for_file(astarted)
        begin = time.monotonic()
        nuvom.sdk.cancel_job(ah.id, app=app)
        with pytest.raises(nuvom.JobCancelledError):
            ah.result(timeout=30)
        assert time.monotonic() - begin < 10  # the coroutine was cancelled, not waited for


def test_worker_survives_backend_errors_without_losing_outcomes(tmp_path: Path) -> None:
    from nuvom_backend_memory import MemoryBackend

    class FlakyBackend(MemoryBackend):
        failures = 0

        def exchange(self, completions, queues, limit, lease_secs, worker_id, **kw):  # type: ignore[no-untyped-def]
            if completions and self.failures < 3:
                self.failures += 1
                raise OSError("disk full (simulated)")
            return super().exchange(completions, queues, limit, lease_secs, worker_id, **kw)

    backend = FlakyBackend()
    flaky_app = Nuvom(root=tmp_path, environ={}, queue=backend, log_level="CRITICAL")
    handles = add.options(app=flaky_app).map([(i, 1) for i in range(10)])
    with running_worker(flaky_app):
        assert [h.result(timeout=30) for h in handles] == [i + 1 for i in range(10)]
    assert backend.failures == 3
    assert all(h.job().attempts == 1 for h in handles)  # outcomes were kept, not re-run
