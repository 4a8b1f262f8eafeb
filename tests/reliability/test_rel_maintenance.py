"""Purging expired results never delays lease renewal (R4 under a huge purge),
and the result TTL is applied within a bounded time (issue 16, point 6)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from nuvom_kernel.maintenance import purge_interval
from nuvom_kernel.models import Job, JobState, now
from reliability.checker import read_executions
from reliability.harness import BACKENDS, Project, describe, size, wait_until


def _insert_expired_rows(db: Path, count: int, finished_at: float) -> None:
    """``count`` finished jobs straight into the table (the API would take minutes)."""
    conn = sqlite3.connect(db)
    try:
        data = '{"pad":"' + "x" * 200 + '"}'
        conn.executemany(
            "INSERT INTO jobs (id, state, queue, priority, ready_at, created_at, finished_at, task, data) "
            "VALUES (?, 'succeeded', 'default', 0, 0, 0, ?, 'rel.work', ?)",
            ((f"expired-{i}", finished_at, data) for i in range(count)))
        conn.commit()
    finally:
        conn.close()


def _rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.slow
def test_r4_a_huge_purge_never_delays_lease_renewal(tmp_path: Path) -> None:
    """Many expired results, a 1 s lease, jobs running 4x the lease.  This process
    plays a second worker that sweeps expired leases every 0.1 s: no job may ever
    be returned to the queue, each runs once, and the purge does finish."""
    lease = 1.0
    expired = size(300_000, 1_000_000)
    project = Project(tmp_path / "proj", "sqlite", lease_secs=lease, sweep_interval_secs=0.25,
                      settings={"result_ttl_secs": "60"})
    db = project.root / ".nuvom" / "result.db"
    try:
        project.app.queue  # noqa: B018 - create the database
        _insert_expired_rows(db, expired, finished_at=now() - 3600)
        jobs = [project.app.enqueue(Job(task="rel.work", args=[n, 4 * lease * 1000], max_retries=5, timeout_secs=None))
                for n in range(2)]
        worker = project.start_worker(concurrency=2)
        worker.wait_ready()
        started = time.monotonic()
        moved = 0
        purged_after: float | None = None
        while project.live_count():
            moved += project.app.queue.sweep()
            if purged_after is None and _rows(db) == len(jobs):
                purged_after = time.monotonic() - started
            assert time.monotonic() - started < 120, "the jobs did not finish"
            time.sleep(0.1)
        wait_until(lambda: _rows(db) == len(jobs), 120, "the expired results to be purged")
        purged_after = purged_after or time.monotonic() - started
        project.stop_all()
        executions, _ = read_executions(project.exec_dir)
        final = [project.app.queue.get(j.id) for j in jobs]
    finally:
        project.close()
    describe({"property": "purge-vs-leases", "expired_results": expired, "lease_secs": lease,
              "job_secs": 4 * lease, "purged_within_secs": round(purged_after, 1), "leases_swept": moved,
              "executions": sum(len(executions[j.id]) for j in jobs)})
    assert moved == 0, f"{moved} healthy lease(s) expired while the worker purged {expired} results"
    for job, record in zip(jobs, final):
        assert record is not None and record.state == JobState.SUCCEEDED and record.attempts == 1, record
        assert len(executions[job.id]) == 1, executions[job.id]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_result_ttl_is_applied_within_a_bounded_time(backend: str, tmp_path: Path) -> None:
    """Results that expire while a worker runs are purged within the purge
    interval of the TTL (plus slack), not an hour later; fresh ones stay."""
    ttl = 4.0
    project = Project(tmp_path / "proj", backend, settings={"result_ttl_secs": str(ttl)})
    try:
        worker = project.start_worker(concurrency=1)
        worker.wait_ready()
        time.sleep(1.0)  # past the worker's first purge: these must be caught by a later one
        at = now()
        old = [Job(task="rel.work", args=[n], state=JobState.SUCCEEDED, created_at=at - 100, updated_at=at - 100,
                   finished_at=at - 10 * ttl) for n in range(20)]
        # younger than the TTL during the whole test (finished "in 30 s": no race with the clock)
        fresh = Job(task="rel.work", args=[99], state=JobState.SUCCEEDED, created_at=at, updated_at=at,
                    finished_at=at + 30)
        for job in [*old, fresh]:
            project.app.queue.save(job)
        started = time.monotonic()
        bound = purge_interval(ttl) + 5.0
        wait_until(lambda: all(project.app.queue.get(j.id) is None for j in old), bound,
                   f"results older than the TTL to be purged (bound {bound:g} s)")
        took = time.monotonic() - started
        still_there = project.app.queue.get(fresh.id) is not None
        project.stop_all()
    finally:
        project.close()
    describe({"property": "result-ttl", "backend": backend, "ttl_secs": ttl,
              "purge_interval_secs": purge_interval(ttl), "purged_after_secs": round(took, 2)})
    assert still_there, "a result younger than the TTL was purged"
