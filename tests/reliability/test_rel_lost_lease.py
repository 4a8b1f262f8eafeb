"""A worker that loses a lease tells the running copy to stop (issue 16, point 9).

The test pauses the worker (SIGSTOP) past its lease, sweeps the job back to
the queue and claims it as another worker would, resumes the worker and
watches the first copy: on the thread executor the task sees ``current_job().is_cancelled()``
and returns; on the process executor the child running it is terminated.
Before, the copy ran to its end next to the new one.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from nuvom_kernel.models import Job, JobState
from reliability.checker import read_executions
from reliability.harness import BACKENDS, TASKS_FILE, Project, describe, wait_until


def _pid_alive(pid: int) -> bool:
    """POSIX only: on Windows ``os.kill`` terminates the process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.mark.skipif(os.name != "posix", reason="pauses the worker with SIGSTOP")
@pytest.mark.parametrize("executor", ["thread", "process"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_copy_that_lost_its_lease_is_told_to_stop(backend: str, executor: str, tmp_path: Path) -> None:
    lease = 1.0
    project = Project(tmp_path / "proj", backend, lease_secs=lease, sweep_interval_secs=0.25)
    shutil.copy(TASKS_FILE, project.root)  # spawned children import it from the project root
    try:
        extra = ["--executor", "process"] if executor == "process" else []
        worker = project.start_worker(concurrency=1, extra=extra)
        worker.wait_ready()
        if executor == "thread":  # cooperative: the task checks is_cancelled()
            job = project.app.enqueue(Job(task="rel.cooperative", args=[60], timeout_secs=None))
        else:  # blocked in sleep: only a hard stop ends it
            job = project.app.enqueue(Job(task="rel.work", args=[1, 60_000], timeout_secs=None))
        queue = project.app.queue
        wait_until(lambda: bool(read_executions(project.exec_dir)[0].get(job.id)), 60, "the job to start")
        copy = read_executions(project.exec_dir)[0][job.id][0]
        # the worker pauses (a stopped VM, a long GC pause) past its lease; meanwhile
        # the lease expires, a sweep returns the job and another worker claims it
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            time.sleep(lease + 0.5)
            assert queue.sweep() >= 1, "the lease did not expire"
            stolen = queue.claim(["default"], 1, 120.0, "another-worker")
            assert [j.id for j in stolen] == [job.id]
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        taken_at = time.time()
        if executor == "thread":
            marker = project.exec_dir / f"stopped-{job.id}"
            wait_until(marker.exists, lease + 4, "the copy that lost its lease to stop")
            stopped_after = float(marker.read_text().strip()) - taken_at
        else:
            wait_until(lambda: not _pid_alive(copy.pid) or copy.pid == worker.pid, lease + 4,
                       "the child running the copy that lost its lease to be terminated")
            assert copy.pid != worker.pid, "the process executor ran the task in the worker process"
            stopped_after = time.time() - taken_at
        # the worker goes on working
        other = project.app.enqueue(Job(task="rel.work", args=[2, 0], timeout_secs=None))
        wait_until(lambda: (j := queue.get(other.id)) is not None and j.state == JobState.SUCCEEDED, 60,
                   "the next job to run")
        assert worker.alive()
        executions, _ = read_executions(project.exec_dir)
    finally:
        project.close()
    assert executions[job.id][0].ended_at is None, "the copy ran to its end"
    describe({"property": "lost-lease-stops-copy", "backend": backend, "executor": executor,
              "stopped_after_secs": round(stopped_after, 2)})


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_a_second_ctrl_c_that_abandons_running_jobs_exits_non_zero(tmp_path: Path) -> None:

    project = Project(tmp_path / "proj", "sqlite")
    try:
        worker = project.start_worker(concurrency=1)
        worker.wait_ready()
        job = project.app.enqueue(Job(task="rel.work", args=[1, 60_000], timeout_secs=None))
        wait_until(lambda: bool(read_executions(project.exec_dir)[0].get(job.id)), 60, "the job to start")
        worker.popen.send_signal(signal.SIGINT)  # graceful: waits for the running job
        time.sleep(0.5)
        assert worker.alive(), worker.stderr()[-2000:]
        worker.popen.send_signal(signal.SIGINT)  # abandon it
        code = worker.wait(30)
        stderr = worker.stderr()
    finally:
        project.close()
    assert code == 1, (code, stderr[-2000:])
    assert "abandoned 1 job(s)" in " ".join(stderr.split()) and job.id in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_one_ctrl_c_lets_running_jobs_finish_and_exits_0(tmp_path: Path) -> None:

    project = Project(tmp_path / "proj", "sqlite")
    try:
        worker = project.start_worker(concurrency=1)
        worker.wait_ready()
        job = project.app.enqueue(Job(task="rel.work", args=[1, 1_500], timeout_secs=None))
        wait_until(lambda: bool(read_executions(project.exec_dir)[0].get(job.id)), 60, "the job to start")
        worker.popen.send_signal(signal.SIGINT)
        code = worker.wait(30)
        final = project.app.queue.get(job.id)
    finally:
        project.close()
    assert code == 0, worker.stderr()[-2000:]
    assert final is not None and final.state == JobState.SUCCEEDED
