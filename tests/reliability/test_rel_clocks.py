"""Clocks on the networked backends, with real worker processes:

- R14: workers whose wall clocks are off by +-60 s neither steal nor lose
  leases (the server's clock decides).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from reliability.checker import check, read_executions
from reliability.harness import (
    NET_BACKENDS,
    Project,
    describe,
    make_rng,
    skewed_clock_env,
)


@pytest.mark.parametrize("backend", NET_BACKENDS)
def test_r14_skewed_worker_clocks_neither_steal_nor_lose_leases(
        backend: str, make_project: Callable[..., Project]) -> None:
    """Two workers, one 60 s ahead and one 60 s behind, 2 s leases and jobs up to
    3 s long: if a worker's clock set or judged a lease, the one behind would
    see every lease of the other as expired and run its jobs again."""
    rng, seed = make_rng(f"R14[{backend}]")
    project = make_project(backend, lease_secs=2.0)
    workers = [project.start_worker(concurrency=4, env=skewed_clock_env(skew)) for skew in (60.0, -60.0)]
    for w in workers:
        w.wait_ready()
    enqueued = project.enqueue_work(24, rng, max_ms=3000.0)
    project.wait_drained(timeout=120)
    offsets = sorted(w.heartbeat_at - time.time() for w in project.app.workers.list_workers())
    assert offsets[0] < -30 and offsets[-1] > 30, offsets  # the skew really applied in the workers
    project.stop_all()
    executions, torn = read_executions(project.exec_dir)
    report = check(enqueued, executions, project.final_jobs(enqueued), project.kills, torn)
    describe({"property": "R14", "backend": backend, "seed": seed, "jobs": len(enqueued),
              "lost": len(report.lost), "duplicates": report.duplicate_count})
    detail = f"seed {seed}: {report.summary()} {report.examples()}"
    assert not report.lost and not report.unfinished and not report.duplicates, detail
    assert report.states == {"succeeded": len(enqueued)}, detail
    assert len({e.pid for runs in executions.values() for e in runs}) == 2, detail  # both skewed workers ran jobs
