"""``ResultBackendContract``: storing finished jobs for callers to read.

Subclass with a ``result_backend`` fixture returning an empty backend.
"""

from __future__ import annotations

from typing import Any

import pytest

from nuvom_kernel.contracts import ResultBackend
from nuvom_kernel.models import ErrorInfo, Job, JobState, now


def finished_job(state: JobState = JobState.SUCCEEDED, result: Any = None, finished_at: float | None = None,
                 **fields: Any) -> Job:
    job = Job(task="contract.result", **fields)
    job.attempts = 1
    job.result = result
    job.finished_at = now() if finished_at is None else finished_at
    job.record(JobState.QUEUED, job.created_at)
    job.record(JobState.RUNNING)
    job.record(state)
    return job


class ResultBackendContract:
    @pytest.mark.parametrize("value", [None, 0, 1.5, "text ü", [1, [2, 3]], {"a": {"b": [True, None]}}])
    def test_round_trip(self, result_backend: ResultBackend, value: Any) -> None:
        job = finished_job(result=value, args=[1, 2], kwargs={"x": "y"})
        result_backend.save(job)
        got = result_backend.get_result(job.id)
        assert got is not None
        assert (got.id, got.state, got.result, got.args, got.kwargs) == (job.id, JobState.SUCCEEDED, value, [1, 2], {"x": "y"})

    def test_failure_keeps_errors(self, result_backend: ResultBackend) -> None:
        job = finished_job(JobState.FAILED)
        job.errors.append(ErrorInfo(attempt=1, type="builtins.ValueError", message="bad", traceback="Traceback..."))
        result_backend.save(job)
        got = result_backend.get_result(job.id)
        assert got is not None and got.state == JobState.FAILED
        assert got.errors[0].type == "builtins.ValueError" and got.errors[0].traceback == "Traceback..."

    def test_unknown_is_none(self, result_backend: ResultBackend) -> None:
        assert result_backend.get_result("never-saved") is None

    def test_save_overwrites(self, result_backend: ResultBackend) -> None:
        job = finished_job(JobState.FAILED)
        result_backend.save(job)
        job.record(JobState.SUCCEEDED)
        job.result = "later"
        result_backend.save(job)
        got = result_backend.get_result(job.id)
        assert got is not None and got.state == JobState.SUCCEEDED and got.result == "later"

    def test_purge_older_than(self, result_backend: ResultBackend) -> None:
        old = finished_job(finished_at=now() - 7200)
        new = finished_job()
        result_backend.save(old)
        result_backend.save(new)
        assert result_backend.purge(older_than=now() - 3600) == 1
        assert result_backend.get_result(old.id) is None
        assert result_backend.get_result(new.id) is not None

    def test_wait_returns_the_job_once_saved_or_none_after_the_timeout(self, result_backend: ResultBackend) -> None:
        import threading
        import time

        job = finished_job(result="waited for")
        assert result_backend.wait(job.id, timeout=0.2) is None
        timer = threading.Timer(0.3, result_backend.save, args=(job,))
        begin = time.monotonic()
        timer.start()
        try:
            got = result_backend.wait(job.id, timeout=30)
        finally:
            timer.join()
        assert got is not None and got.result == "waited for"
        assert time.monotonic() - begin < 25  # returned when saved, not at the timeout
