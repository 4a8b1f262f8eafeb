"""Clocks on the networked backends, with real worker processes:

- R14: workers whose wall clocks are off by +-60 s neither steal nor lose
  leases (the server's clock decides);
- Redis: a job with an eta 2 h ahead and a 30 s lease is delivered once, at
  its eta (Celery on Redis redelivers such a job every visibility timeout).
  The two hours pass through the plugin's test-only ``clock_offset_secs``,
  which shifts the server clock its scripts read: no 2-hour sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from nuvom_kernel.models import Job, JobState
from reliability.checker import check, read_executions
from reliability.harness import (
    NET_BACKENDS,
    SLACK_SECS,
    Project,
    describe,
    make_rng,
    skewed_clock_env,
    wait_until,
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
    enqueued = project.enqueue_work(16, rng, max_ms=3000.0)
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


def test_redis_eta_two_hours_ahead_with_a_30s_lease_is_delivered_once_at_its_eta(
        make_project: Callable[..., Project]) -> None:
    ahead, lease, early = 7200.0, 30.0, 4.0
    project = make_project("redis", lease_secs=lease)
    queue = project.app.queue
    eta = queue.server_time() + ahead  # type: ignore[attr-defined]
    far = project.app.enqueue(Job(task="rel.work", args=[1, 0], eta=eta, timeout_secs=None))
    assert far.state == JobState.SCHEDULED
    # now: a worker claims around the far job for several of its polls
    first = project.start_worker(concurrency=4)
    first.wait_ready()
    probe = project.app.enqueue(Job(task="rel.work", args=[2, 0], timeout_secs=None))
    wait_until(lambda: (j := queue.get(probe.id)) is not None and j.is_terminal(), 30, "the probe job to run")
    time.sleep(1.0)
    project.stop_all()
    waiting = queue.get(far.id)
    assert waiting is not None and waiting.state == JobState.SCHEDULED, waiting
    assert [t.state for t in waiting.history] == [JobState.SCHEDULED], waiting.history
    # two hours later (less `early` seconds): two workers on the shifted server clock
    offset = eta - queue.server_time() - early  # type: ignore[attr-defined]
    for _ in range(2):
        project.start_worker(concurrency=4, env={"NUVOM_REDIS__CLOCK_OFFSET_SECS": repr(offset)})
    for w in project.live_workers():
        w.wait_ready()
    ready_at = queue.server_time() + offset  # type: ignore[attr-defined]  # on the shifted clock
    wait_until(lambda: (j := queue.get(far.id)) is not None and j.is_terminal(), 60, "the far job to run")
    time.sleep(1.0)  # a redelivery would come now, if ever
    project.stop_all()
    executions, _ = read_executions(project.exec_dir)
    done = queue.get(far.id)
    assert done is not None and done.state == JobState.SUCCEEDED, done
    assert (done.attempts, done.lease_expiries) == (1, 0), done
    assert len(executions[far.id]) == 1, executions[far.id]
    claims = [t for t in done.history if t.state in (JobState.CLAIMED, JobState.RUNNING)]
    delivered = claims[0].at - eta
    describe({"property": "redis far eta", "eta_ahead_s": ahead, "lease_s": lease,
              "delivered_after_eta_s": round(delivered, 3), "workers_ready_before_eta_s": round(eta - ready_at, 2),
              "claims": len(claims)})
    # one claim, at its eta by the shifted clock: never early, and within a poll (plus
    # slack) of the eta, or of the workers being ready if a loaded machine started them late
    assert delivered >= 0.0, f"delivered {-delivered:.3f} s before its eta"
    assert claims[0].at <= max(eta, ready_at) + 1.0 + SLACK_SECS, (
        f"delivered {delivered:.3f} s after its eta (workers ready {ready_at - eta:+.2f} s from it)")
    assert len({t.note.rsplit(' by ', 1)[-1] for t in claims if t.note and ' by ' in t.note}) == 1, done.history
