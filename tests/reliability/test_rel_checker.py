"""The checker's own rules, on hand-made execution logs."""

from __future__ import annotations

from nuvom_kernel.models import Job, JobState
from reliability.checker import Execution, check
from reliability.harness import Kill


def _done(job_id: str) -> Job:
    job = Job(task="rel.work", id=job_id)
    job.state = JobState.SUCCEEDED
    return job


def test_an_end_line_logged_after_the_kill_call_counts_as_finished_not_running() -> None:
    # The harness read its clock at 10.0, was preempted, and the signal landed at
    # 10.05: meanwhile the worker finished job a (end at 10.02) and began job b.
    kill = Kill(pid=7, worker_id="w", called_at=10.0, dead_at=10.06)
    execs = {
        "a": [Execution("a", 1, 7, 1, 9.99, ended_at=10.02), Execution("a", 1, 8, 2, 10.5)],
        "b": [Execution("b", 1, 7, 1, 10.03), Execution("b", 1, 8, 2, 10.6)],
    }
    report = check(["a", "b"], execs, {"a": _done("a"), "b": _done("b")}, [kill])
    assert (report.dup_finished, report.dup_running, report.max_running_per_kill) == (1, 1, 1)
    assert not report.unexplained


def test_a_duplicate_that_began_before_the_earlier_process_died_is_unexplained() -> None:
    kill = Kill(pid=7, worker_id="w", called_at=10.0, dead_at=10.06)
    execs = {"a": [Execution("a", 1, 7, 1, 9.0), Execution("a", 1, 8, 2, 9.5)]}
    report = check(["a"], execs, {"a": _done("a")}, [kill])
    assert report.unexplained == ["a"]


def test_a_duplicate_in_a_process_never_killed_is_unexplained() -> None:
    execs = {"a": [Execution("a", 1, 7, 1, 9.0, ended_at=9.1), Execution("a", 1, 8, 2, 9.5)]}
    report = check(["a"], execs, {"a": _done("a")}, [])
    assert report.unexplained == ["a"] and report.duplicate_count == 1
