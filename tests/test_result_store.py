"""Results in another store than the queue: saved after the queue accepted the
outcome, retried until stored, and ``handle.result()`` works end to end."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from support import running_worker

from nuvom import JobState, task
from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job


@task(name="results.double")
def double(n: int) -> int:
    return 2 * n


@task(name="results.boom")
def boom() -> None:
    raise ValueError("boom")


def _split_app(tmp_path: Path, **overrides: Any) -> Nuvom:
    """Jobs in the file backend, results in SQLite: two stores, two plugins."""
    return Nuvom(root=tmp_path, environ={}, queue_backend="file", result_backend="sqlite", log_level="WARNING",
                 lease_secs=5.0, sweep_interval_secs=0.2, poll_interval_secs=0.2, **overrides)


def test_results_in_another_store_reach_the_caller(tmp_path: Path) -> None:
    app = _split_app(tmp_path)
    try:
        assert not app.shares_storage
        ok = double.options(app=app).delay(21)
        bad = boom.options(app=app).delay()
        with running_worker(app):
            assert ok.result(timeout=30) == 42
            with pytest.raises(ValueError, match="boom"):  # the task's own error, rebuilt
                bad.result(timeout=30)
        stored = app.results.get_result(ok.id)
        assert stored is not None and stored.state == JobState.SUCCEEDED and stored.result == 42
        failed = app.results.get_result(bad.id)
        assert failed is not None and failed.state == JobState.FAILED and failed.errors[-1].message == "boom"
    finally:
        app.close()


def test_a_failing_result_store_is_retried_and_loses_nothing(tmp_path: Path) -> None:
    app = _split_app(tmp_path)
    results = app.results
    calls = {"failed": 0}
    lock = threading.Lock()
    real_save = results.save

    def flaky_save(job: Job) -> None:
        with lock:
            if calls["failed"] < 5:
                calls["failed"] += 1
                raise OSError("disk full (simulated)")
        real_save(job)

    results.save = flaky_save  # type: ignore[method-assign]
    try:
        handles = double.options(app=app).map([(i,) for i in range(10)])
        with running_worker(app):
            assert [h.result(timeout=60) for h in handles] == [2 * i for i in range(10)]
            for h in handles:  # every result reaches the result store despite the failures
                assert results.wait(h.id, timeout=30) is not None
        assert calls["failed"] == 5
        assert all(results.get_result(h.id).result == 2 * i for i, h in enumerate(handles))  # type: ignore[union-attr]
    finally:
        app.close()


def test_wait_on_a_missing_job_raises_at_once(tmp_path: Path) -> None:
    from nuvom_kernel.errors import JobNotFoundError
    from nuvom_kernel.task import JobHandle

    app = _split_app(tmp_path)
    try:
        with pytest.raises(JobNotFoundError):
            JobHandle("no-such-job", app).wait(timeout=5)
    finally:
        app.close()
