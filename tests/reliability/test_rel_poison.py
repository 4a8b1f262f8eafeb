"""R6 on the thread executor: a task that kills its own worker process.

The worker's death is not charged to the job's retries; its lease expiries
are.  The job is attempted at most (lease-expiry budget + 1) times, then
``dead`` with a reason, while other jobs keep flowing through the restarted
workers.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from nuvom_kernel.models import Job, JobState
from reliability.checker import read_executions
from reliability.harness import BACKENDS, Project, describe


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_r6_a_task_that_kills_its_worker_is_dead_after_the_lease_expiry_budget(backend: str, tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", backend, lease_secs=1.0, sweep_interval_secs=0.2)
    budget = 2
    try:
        poison = project.app.enqueue(Job(task="rel.exit_process", max_lease_expiries=budget))
        good = project.enqueue_work(50, random.Random(6), max_ms=2.0, retries=0)
        worker = project.start_worker(concurrency=2)
        deaths = 0
        deadline = time.monotonic() + 120
        while True:
            job = project.app.queue.get(poison.id)
            assert job is not None
            if job.state == JobState.DEAD:
                break
            assert time.monotonic() < deadline, f"poison job still {job.state} after {deaths} worker deaths"
            if not worker.alive():
                deaths += 1
                worker = project.start_worker(concurrency=2)
            time.sleep(0.05)
        project.wait_drained(timeout=60, check_workers=False)
        if worker.alive():
            project.stop_all()
        executions, _ = read_executions(project.exec_dir)
        finals = project.final_jobs(good)
    finally:
        project.close()
    runs = executions.get(poison.id, [])
    describe({"property": "R6-thread", "backend": backend, "worker_deaths": deaths, "poison_runs": len(runs)})
    assert job.reason is not None and "lease expired 3 times" in job.reason and "budget 2" in job.reason, job.reason
    assert job.attempts == 0 and job.lease_expiries == budget + 1  # no retry was used: retries=0 never mattered
    assert len(runs) == budget + 1
    assert {j.state if j else None for j in finals.values()} == {JobState.SUCCEEDED}
