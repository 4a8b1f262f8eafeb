"""``ExecutorContract``: running attempts, reporting endings, timeouts.

Subclass with an ``executor`` fixture returning a fresh, *unstarted* executor::

    class TestMyExecutor(ExecutorContract):
        @pytest.fixture
        def executor(self):
            ex = MyExecutor()
            yield ex
            ex.shutdown(wait=False)

Work items name tasks in ``nuvom_kernel.testing.tasks`` (``modules``), so an
executor that runs them in another process can import them there.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nuvom_kernel.context import JobContext
from nuvom_kernel.contracts import Executor, WorkItem, WorkResult
from nuvom_kernel.execution import run_async, run_sync
from nuvom_kernel.models import Job
from nuvom_kernel.task import get_task
from nuvom_kernel.testing import tasks as contract_tasks

WAIT = 15.0
TASKS_MODULE = contract_tasks.__name__


class Collector:
    """Gathers ``done`` callbacks; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.results: list[WorkResult] = []
        self.cv = threading.Condition()

    def __call__(self, result: WorkResult) -> None:
        with self.cv:
            self.results.append(result)
            self.cv.notify_all()

    def wait(self, n: int, timeout: float = WAIT) -> list[WorkResult]:
        with self.cv:
            ok = self.cv.wait_for(lambda: len(self.results) >= n, timeout)
            assert ok, f"only {len(self.results)} of {n} results within {timeout} s"
            return list(self.results)


def work_item(task_name: str, *args: Any, timeout: float | None = None) -> WorkItem:
    job = Job(task=task_name, args=list(args), timeout_secs=timeout)
    job.attempts = 1
    task = get_task(task_name)
    ctx = JobContext(job=job, deadline=None if timeout is None else time.monotonic() + timeout)
    call = (lambda: run_async(task, ctx)) if task.is_async else (lambda: run_sync(task, ctx))
    return WorkItem(job=job, call=call, timeout_secs=timeout, modules=(TASKS_MODULE,), is_async=task.is_async,
                    context=ctx)


class ExecutorContract:
    concurrency = 2

    @pytest.fixture
    def started(self, executor: Executor) -> Executor:
        executor.start(self.concurrency)
        return executor

    def test_runs_and_reports_value(self, started: Executor) -> None:
        done = Collector()
        item = work_item("nuvom_contract.echo", {"a": [1, 2]})
        started.submit(item, done)
        [result] = done.wait(1)
        assert result.job_id == item.job.id and result.ok and result.value == {"a": [1, 2]}
        assert not result.timed_out

    def test_reports_the_error(self, started: Executor) -> None:
        done = Collector()
        started.submit(work_item("nuvom_contract.fail", "broken"), done)
        [result] = done.wait(1)
        assert not result.ok and result.error is not None
        assert result.error.type.endswith("ValueError") and result.error.message == "broken"
        assert "broken" in result.error.traceback

    def test_runs_async_tasks(self, started: Executor) -> None:
        done = Collector()
        started.submit(work_item("nuvom_contract.aecho", 7), done)
        [result] = done.wait(1)
        assert result.ok and result.value == 7

    def test_free_slots_track_running_work(self, started: Executor, tmp_path: Path) -> None:
        assert started.free_slots() == self.concurrency
        gate = tmp_path / "gate"
        done = Collector()
        for _ in range(self.concurrency):
            started.submit(work_item("nuvom_contract.wait_file", str(gate)), done)
        assert started.free_slots() == 0
        gate.touch()
        results = done.wait(self.concurrency)
        assert all(r.ok and r.value == "released" for r in results)
        deadline = time.monotonic() + WAIT
        while started.free_slots() != self.concurrency and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started.free_slots() == self.concurrency

    def test_runs_concurrently(self, started: Executor, tmp_path: Path) -> None:
        # both jobs wait for a file only the test creates: they can only both be
        # running if the executor runs them at the same time
        gate = tmp_path / "both"
        done = Collector()
        started.submit(work_item("nuvom_contract.wait_file", str(gate)), done)
        started.submit(work_item("nuvom_contract.wait_file", str(gate)), done)
        assert started.free_slots() == self.concurrency - 2
        gate.touch()
        assert [r.ok for r in done.wait(2)] == [True, True]

    def test_timeout_is_reported_within_a_second(self, started: Executor) -> None:
        done = Collector()
        begin = time.monotonic()
        started.submit(work_item("nuvom_contract.sleep", 5.0, timeout=0.3), done)
        first = done.wait(1)[0]
        elapsed = time.monotonic() - begin
        assert first.timed_out and not first.ok
        assert elapsed < 0.3 + 1.0 + 1.0  # timeout + 1 s, plus slack for a loaded machine

    def test_many_items(self, started: Executor) -> None:
        done = Collector()
        for i in range(200):
            started.submit(work_item("nuvom_contract.echo", i), done)
        results = done.wait(200, timeout=60)
        assert sorted(r.value for r in results) == list(range(200))
