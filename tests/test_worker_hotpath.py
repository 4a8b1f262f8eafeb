"""The worker's hot path: executor threads hand on the next job themselves, and
the jobs at risk of running twice after a kill never exceed the crash bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from nuvom_backend_memory import MemoryBackend

from nuvom import task
from nuvom_kernel.app import Nuvom
from nuvom_kernel.contracts import Beat, Completion, Exchanged, WorkItem, WorkResult
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.worker import Worker
from nuvom_kernel.worker_jobs import Held


@task(name="hot.noop")
def noop(i: int) -> int:
    return i


@task(name="hot.nap")
def nap(i: int) -> int:
    time.sleep(0.005)
    return i


class CountingBackend(MemoryBackend):
    """A memory backend that records, after every round trip, how many jobs the
    store holds as running: the attempts a kill of the worker would re-run."""

    def __init__(self) -> None:
        super().__init__()
        self.most_running = 0

    def exchange(self, completions: Sequence[Completion], queues: Sequence[str], limit: int,
                 lease_secs: float, worker_id: str, *, starts: Mapping[str, int] | None = None,
                 start_now: int = 0) -> Exchanged:
        with self._lock:
            reply = super().exchange(completions, queues, limit, lease_secs, worker_id,
                                     starts=starts, start_now=start_now)
            running = sum(1 for job in self._jobs.values() if job.state == JobState.RUNNING)
            self.most_running = max(self.most_running, running)
        return reply


def counting_app(root: Path, **settings: Any) -> tuple[Nuvom, CountingBackend]:
    store = CountingBackend()
    app = Nuvom(root=root, environ={}, queue=store, results=store, queue_backend="memory",
                result_backend="memory", log_level="WARNING", **settings)
    return app, store


@pytest.mark.parametrize("max_unrecorded", [0, 3, 16])
def test_the_store_never_shows_more_running_than_the_crash_bound(tmp_path: Path, max_unrecorded: int) -> None:
    app, store = counting_app(tmp_path, max_unrecorded=max_unrecorded)
    try:
        handles = app.enqueue_many([Job(task="hot.noop", args=[i]) for i in range(400)])
        stats = Worker(app, concurrency=4, burst=True).run()
        assert stats.succeeded == 400
        assert [app.get_job(h.id).result for h in handles] == list(range(400))  # type: ignore[union-attr]
        # a killed worker re-runs at most concurrency + max_unrecorded jobs: the
        # store never holds more started-but-unrecorded attempts than that
        assert 0 < store.most_running <= 4 + max_unrecorded
    finally:
        app.close()


def test_executor_threads_start_the_next_job_themselves(tmp_path: Path) -> None:
    app, _ = counting_app(tmp_path)
    submitted_from: list[str] = []
    try:
        app.enqueue_many([Job(task="hot.noop", args=[i]) for i in range(400)])
        worker = Worker(app, concurrency=4, burst=True)
        submit = worker.executor.submit

        def recording_submit(item: WorkItem, done: Any) -> None:
            submitted_from.append(threading.current_thread().name)
            submit(item, done)

        worker.executor.submit = recording_submit  # type: ignore[method-assign]
        stats = worker.run()
        assert stats.succeeded == 400
    finally:
        app.close()
    loop_thread = threading.current_thread().name
    by_executor = [name for name in submitted_from if name != loop_thread]
    # most jobs are handed on by the executor thread whose previous job just ended
    assert by_executor and all(name.startswith("nuvom-thread-") for name in by_executor)
    assert len(submitted_from) == 400


def test_a_refusing_executor_fails_the_attempt_instead_of_losing_it(tmp_path: Path) -> None:
    app, _ = counting_app(tmp_path)
    try:
        handle = app.enqueue(Job(task="hot.noop", args=[1]))
        worker = Worker(app, concurrency=2, burst=True)

        def refuse(item: WorkItem, done: Any) -> None:
            raise RuntimeError("executor is shut down")

        worker.executor.submit = refuse  # type: ignore[method-assign]
        stats = worker.run()
        job = app.get_job(handle.id)
        assert stats.failed == 1 and job is not None and job.state == JobState.FAILED
        assert job.last_error is not None and "executor is shut down" in job.last_error.message
    finally:
        app.close()


def test_a_late_report_of_an_older_attempt_leaves_the_new_claim_alone(tmp_path: Path) -> None:
    """A soft-timed-out thread that ends after its job was claimed again (an
    operator retry, say) must not drop the new claim from the worker's holdings."""
    app, _ = counting_app(tmp_path)
    try:
        worker = Worker(app, concurrency=1)
        job = Job(task="hot.noop", args=[1], token=2)
        old = Job(task="hot.noop", args=[1], token=1, id=job.id)
        stale, fresh = Held(old, noop, worker.executor), Held(job, noop, worker.executor)
        stale.reported = True  # its first report (the timeout) is in; this is the late one
        worker._held[job.id] = fresh
        worker._complete(stale, WorkResult(job_id=job.id, ok=True, timed_out=True))
        assert worker._held[job.id] is fresh
    finally:
        app.close()


def test_a_lease_lost_by_an_ended_attempt_is_not_reported_by_the_heartbeat(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The loop's round trip may record an ended attempt while the heartbeat
    renews it: the renewal then finds the lease gone, which is no loss (a real
    one shows as a refused outcome).  A running attempt's loss is reported."""
    app, store = counting_app(tmp_path)
    try:
        worker = Worker(app, concurrency=2)
        ended = Held(Job(task="hot.noop", args=[1], token=3), noop, worker.executor)
        ended.reported = ended.ended = True
        running = Held(Job(task="hot.noop", args=[2], token=4), noop, worker.executor)
        worker._held = {ended.job.id: ended, running.job.id: running}
        store.heartbeat = lambda worker, leases, lease_secs: Beat(set(leases), set())  # type: ignore[method-assign]
        with caplog.at_level("WARNING", logger="nuvom.worker"):
            worker._heartbeat.beat(renew=True)
        lost = [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]
        assert lost == [f"worker {worker.id} lost the lease of job {running.job.id}; its outcome will be refused"]
    finally:
        app.close()


class StartWatchingBackend(MemoryBackend):
    """Applies each round trip's finishes first, then looks at what the worker
    asks to start: a job whose lease expired while it ran must be started only
    while fewer than ``concurrency`` of the worker's jobs are running in the store."""

    def __init__(self, concurrency: int) -> None:
        super().__init__()
        self.concurrency = concurrency
        self.redelivered_starts: list[int] = []  # running jobs in the store when one was started

    def exchange(self, completions: Sequence[Completion], queues: Sequence[str], limit: int,
                 lease_secs: float, worker_id: str, *, starts: Mapping[str, int] | None = None,
                 start_now: int = 0) -> Exchanged:
        with self._lock:
            done = super().exchange(completions, queues, 0, lease_secs, worker_id)
            running = sum(1 for job in self._jobs.values() if job.state == JobState.RUNNING)
            reply = super().exchange((), queues, limit, lease_secs, worker_id, starts=starts, start_now=start_now)
            for jid in reply.started:
                if self._jobs[jid].lease_expiries:
                    self.redelivered_starts.append(running)
            assert not any(j.state == JobState.RUNNING and j.lease_expiries for j in reply.claimed)
        return Exchanged(done.accepted, reply.claimed, reply.started)


def test_a_redelivered_job_starts_only_on_a_free_slot(tmp_path: Path) -> None:
    """Short jobs are started ahead of free slots (within the crash bound), but a
    job whose lease already expired while it ran is not: a worker killed before
    running it would spend its lease-expiry budget for nothing."""
    store = StartWatchingBackend(concurrency=2)
    app = Nuvom(root=tmp_path, environ={}, queue=store, results=store, queue_backend="memory",
                result_backend="memory", log_level="WARNING", max_unrecorded=8)
    try:
        jobs = [Job(task="hot.nap", args=[i], lease_expiries=1 if i % 5 == 0 else 0) for i in range(400)]
        handles = app.enqueue_many(jobs)
        stats = Worker(app, concurrency=2, burst=True).run()
        assert stats.succeeded == 400
        done = [app.get_job(h.id) for h in handles]
        assert all(j is not None and j.state == JobState.SUCCEEDED and j.attempts == 1 for j in done)
        assert len(store.redelivered_starts) == 80  # each started by the worker, none at claim time
        assert max(store.redelivered_starts) < 2, store.redelivered_starts
    finally:
        app.close()
