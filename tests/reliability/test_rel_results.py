"""R12: result writers killed mid-write leave every result whole or absent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nuvom_kernel.models import Job, JobState
from reliability.checker import read_executions
from reliability.harness import BACKENDS, Project, describe, make_rng, size
from reliability.rel_tasks import big_result

RESULT_BYTES = 100_000


def _verify(job: Job | None, n: int) -> str | None:
    """None if the job is fine (whole or not finished yet), else what is wrong."""
    if job is None:
        return "absent"
    if job.state == JobState.SUCCEEDED:
        return None if job.result == big_result(n, RESULT_BYTES) else "result differs"
    if job.state in (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING):
        return None
    return f"{job.state.value}: {job.reason}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_r12_killed_result_writers_leave_whole_or_absent_results(backend: str, tmp_path: Path) -> None:
    rng, seed = make_rng(f"R12[{backend}]")
    jobs, kills = size(300, 1500), size(10, 50)
    project = Project(tmp_path / "proj", backend)
    started = time.monotonic()
    number: dict[str, int] = {}
    bad: list[tuple[str, str]] = []
    checked = 0
    try:
        for _ in range(2):
            project.start_worker(concurrency=4).wait_ready()
        chunk = jobs // kills
        for k in range(kills):
            batch = [Job(task="rel.big", args=[len(number) + i, RESULT_BYTES], max_retries=20, timeout_secs=None)
                     for i in range(chunk if k < kills - 1 else jobs - len(number))]
            for job in project.app.enqueue_many(batch):
                number[job.id] = job.args[0]
            time.sleep(rng.uniform(0.01, 0.15))  # while the batch is being run and written
            ready = [w for w in project.live_workers() if w.is_ready()]
            if not ready:  # kill a worker that is running jobs, not one still starting
                project.live_workers()[0].wait_ready()
                ready = project.live_workers()[:1]
            victim = rng.choice(ready)
            kill = project.kill(victim)
            # read back every job the killed process ran: whole, or not finished
            executions, _ = read_executions(project.exec_dir)
            ran = [jid for jid, ex in executions.items() if any(e.pid == kill.pid for e in ex)]
            for jid in ran:
                problem = _verify(project.app.queue.get(jid), number[jid])
                checked += 1
                if problem:
                    bad.append((jid, problem))
            project.start_worker(concurrency=4)
        project.wait_drained(timeout=size(300, 900))
        project.stop_all()
        final = project.final_jobs(number)
        quarantined = project.quarantined()
    finally:
        project.close()
    bad += [(jid, p) for jid, job in final.items() if (p := _verify(job, number[jid])) is not None]
    unfinished = [jid for jid, job in final.items() if job is None or job.state != JobState.SUCCEEDED]
    describe({"property": "R12", "backend": backend, "seed": seed, "jobs": len(number), "result_bytes": RESULT_BYTES,
              "kills": len(project.kills), "read_after_kills": checked, "damaged": len(bad),
              "quarantined": len(quarantined), "duration_s": round(time.monotonic() - started, 1)})
    assert not bad, f"seed {seed}: damaged results: {bad[:5]}"
    assert not unfinished, f"seed {seed}: not succeeded: {unfinished[:5]}"
    assert not quarantined, f"seed {seed}: {quarantined[:3]}"
