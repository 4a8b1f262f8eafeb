"""R4 (leases and fencing tokens) and R5 (graceful stops), with real worker
processes on every backend (SQLite, file, Redis, PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from nuvom_kernel.contracts import Completion
from nuvom_kernel.models import Job, JobState, Outcome
from reliability.checker import check, read_executions
from reliability.harness import (
    ALL_BACKENDS,
    SLACK_SECS,
    Project,
    describe,
    make_rng,
    size,
    wait_until,
)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_r4_healthy_long_job_is_never_redelivered(backend: str, make_project: Callable[..., Project]) -> None:
    lease = 1.0
    project = make_project(backend, lease_secs=lease, sweep_interval_secs=0.25)
    try:
        workers = [project.start_worker(concurrency=2) for _ in range(2)]
        for w in workers:
            w.wait_ready()
        job = project.app.enqueue(Job(task="rel.work", args=[1, 5 * lease * 1000], max_retries=5, timeout_secs=None))
        project.wait_drained(timeout=60)
        project.stop_all()
        executions, _ = read_executions(project.exec_dir)
        final = project.app.queue.get(job.id)
    finally:
        project.close()
    assert final is not None and final.state == JobState.SUCCEEDED and final.attempts == 1, final
    assert len(executions[job.id]) == 1, executions[job.id]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_r4_dead_workers_job_is_reclaimed_within_lease_plus_sweep(backend: str, make_project: Callable[..., Project]) -> None:
    lease, sweep = 1.0, 0.25
    project = make_project(backend, lease_secs=lease, sweep_interval_secs=sweep)
    try:
        first = project.start_worker(concurrency=1)
        first.wait_ready()
        job = project.app.enqueue(Job(task="rel.stall", args=[120_000], timeout_secs=None))
        wait_until(lambda: job.id in read_executions(project.exec_dir)[0], 30, "the first attempt to start")
        second = project.start_worker(concurrency=1)
        second.wait_ready()
        kill = project.kill(first)
        wait_until(lambda: len(read_executions(project.exec_dir)[0].get(job.id, [])) == 2, 30,
                   "the job to be reclaimed by the other worker")
        project.wait_drained(timeout=30)
        project.stop_all()
        execs = read_executions(project.exec_dir)[0][job.id]
        final = project.app.queue.get(job.id)
    finally:
        project.close()
    took = execs[1].at - kill.called_at
    # The lease expires at most `lease` after the kill; the other worker's sweeper
    # runs every `sweep` s (checked on heartbeat ticks of at most lease/3 s).
    bound = lease + sweep + lease / 3 + SLACK_SECS
    describe({"property": "R4", "backend": backend, "lease_s": lease, "sweep_s": sweep,
              "reclaimed_after_kill_s": round(took, 3), "bound_s": round(bound, 2)})
    assert execs[0].pid == kill.pid and execs[1].pid == second.pid
    assert execs[1].token > execs[0].token
    assert 0 < took <= bound, f"reclaimed {took:.2f} s after the kill; bound {bound:.2f} s"
    # the killed worker's attempt was not charged: one attempt, one lease expiry
    assert final is not None and final.state == JobState.SUCCEEDED and final.result == 2
    assert (final.attempts, final.lease_expiries) == (1, 1)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_r4_stale_token_is_refused(backend: str, make_project: Callable[..., Project]) -> None:
    project = make_project(backend)
    queue = project.app.queue
    try:
        job = queue.enqueue(Job(task="rel.work", args=[1], max_retries=3))
        [first] = queue.claim(["default"], 1, 0.05, "worker-a", start_now=1)
        wait_until(lambda: queue.sweep() >= 1, 10, "the short lease to expire and be swept")
        [second] = queue.claim(["default"], 1, 30.0, "worker-b", start_now=1)
        assert first.id == second.id == job.id
        old, new = first.token, second.token
        assert old is not None and new is not None and new > old
        # redelivered after its lease expired: claimed only, started by its worker on a free slot
        assert second.state == JobState.CLAIMED and queue.start({job.id: new}) == {job.id}
        assert queue.finish(job.id, old, Outcome(kind="succeeded", result="stale")) is False
        assert queue.renew({job.id: old}, 30.0) == {job.id}
        assert queue.set_progress(job.id, old, {"stale": True}) is False
        assert queue.release(job.id, old) is False
        accepted = queue.exchange([_completion(job.id, old, "stale")], ["default"], 0, 30.0, "worker-a").accepted
        assert accepted == [False]
        stored = queue.get(job.id)
        assert stored is not None and stored.state == JobState.RUNNING and stored.token == new
        assert queue.finish(job.id, new, Outcome(kind="succeeded", result="fresh")) is True
        done = queue.get(job.id)
        assert done is not None and done.state == JobState.SUCCEEDED and done.result == "fresh"
        assert queue.finish(job.id, new, Outcome(kind="succeeded", result="again")) is False
    finally:
        project.close()


def _completion(job_id: str, token: int, result: str) -> Completion:
    return Completion(job_id, token, Outcome(kind="succeeded", result=result))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_r5_graceful_restarts_lose_nothing_and_run_nothing_twice(backend: str, make_project: Callable[..., Project]) -> None:
    rng, seed = make_rng(f"R5[{backend}]")
    jobs, restarts = size(2000, 10_000, backend=backend, net=500), size(10, 50, backend=backend, net=4)
    project = make_project(backend)
    started = time.monotonic()
    enqueued: list[str] = []
    stops: dict[str, float] = {}
    leftovers: list[str] = []
    stop_secs: list[float] = []
    try:
        for _ in range(2):
            project.start_worker(concurrency=4).wait_ready()
        # one backlog that lasts through the restarts, so every stop finds prefetched claims:
        # jobs of 55-85 ms, for which a worker keeps claims ahead of its free slots (jobs
        # under 50 ms on average are claimed and started in one step; nothing waits unstarted)
        enqueued += project.enqueue_work(jobs, rng, min_ms=55.0, max_ms=85.0, retries=0)
        for _ in range(restarts):
            time.sleep(rng.uniform(0.05, 0.4))
            victim = rng.choice([w for w in project.live_workers() if w.is_ready()])
            stops[victim.id] = victim.request_stop()
            code = victim.wait(60)
            stop_secs.append(time.time() - stops[victim.id])
            assert code == 0, f"seed {seed}: worker {victim.id} exited {code}:\n{victim.stderr()[-3000:]}"
            # its unstarted claims were released at once, not left to their leases
            held = [j.id for j in project.app.list_jobs(states=[JobState.RUNNING], limit=10**6)
                    if j.worker_id == victim.id]
            leftovers += held
            project.start_worker(concurrency=4).wait_ready()
        project.wait_drained(timeout=size(300, 900))
        project.stop_all()
        executions, torn = read_executions(project.exec_dir)
        final = project.final_jobs(enqueued)
        report = check(enqueued, executions, final, project.kills, torn)
    finally:
        project.close()
    # claiming stops within 1 s of the request: no claim by a stopped worker later
    late: list[tuple[str, float]] = []
    released = 0
    for job in final.values():
        assert job is not None
        for tr in job.history:
            note = tr.note or ""
            if note == "released unstarted":
                released += 1
            wid = note.rsplit(" by ", 1)[-1] if tr.state == JobState.RUNNING and " by " in note else None
            if wid in stops and tr.at > stops[wid]:
                late.append((job.id, tr.at - stops[wid]))
    worst = max((d for _, d in late), default=0.0)
    describe({"property": "R5", "backend": backend, "seed": seed, "jobs": len(enqueued), "graceful_restarts": restarts,
              "lost": len(report.lost), "duplicates": report.duplicate_count, "released_unstarted": released,
              "latest_claim_after_stop_s": round(worst, 3), "slowest_exit_s": round(max(stop_secs), 2),
              "duration_s": round(time.monotonic() - started, 1)})
    detail = f"seed {seed}: {report.summary()} {report.examples()}"
    assert not report.lost and not report.unfinished and not report.duplicates, detail
    assert report.states == {"succeeded": len(enqueued)}, detail
    assert all(j is not None and j.attempts == 1 for j in final.values()), "a released claim still counted an attempt"
    assert not leftovers, f"seed {seed}: claims left running by a stopped worker: {leftovers[:5]}"
    assert worst < 1.0 + SLACK_SECS, f"seed {seed}: a stopped worker claimed {worst:.2f} s after the stop request"
    assert released > 0, f"seed {seed}: no stop released a prefetched claim (nothing was buffered?)"
