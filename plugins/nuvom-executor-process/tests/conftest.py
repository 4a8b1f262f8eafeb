"""Fixtures for the process executor's tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nuvom_executor_process import ProcessExecutor, ProcessOptions

from nuvom_kernel.contracts import WorkItem, WorkResult
from nuvom_kernel.models import Job
from nuvom_kernel.task import get_task
from nuvom_kernel.testing.executor_contract import Collector

HERE = Path(__file__).resolve().parent


@pytest.fixture
def proc_tasks(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The test task module, importable here and (through sys.path) in children."""
    monkeypatch.syspath_prepend(str(HERE))
    return importlib.import_module("proc_tasks")


def _not_in_parent() -> Any:
    raise AssertionError("the process executor must run the task in a child, not call item.call")


def _make_item(task_name: str, *args: Any, timeout: float | None = None, attempts: int = 1) -> WorkItem:
    task = get_task(task_name)
    job = Job(task=task_name, args=list(args), timeout_secs=timeout)
    job.attempts = attempts
    return WorkItem(job=job, call=_not_in_parent, timeout_secs=timeout, modules=(task.module,),
                    is_async=task.is_async)


def _run_one(executor: ProcessExecutor, item: WorkItem, timeout: float = 30.0) -> WorkResult:
    done = Collector()
    executor.submit(item, done)
    return done.wait(1, timeout)[0]


@pytest.fixture
def make_executor(proc_tasks: ModuleType) -> Iterator[Callable[..., ProcessExecutor]]:
    """Started executors (``concurrency=1`` unless given), shut down after the test."""
    made: list[ProcessExecutor] = []

    def make(concurrency: int = 1, **options: Any) -> ProcessExecutor:
        ex = ProcessExecutor(ProcessOptions.from_mapping(options), root=HERE)
        ex.start(concurrency)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.shutdown(wait=False)


@pytest.fixture
def item(proc_tasks: ModuleType) -> Callable[..., WorkItem]:
    """``item("proc.pid", *args, timeout=None, attempts=1)``: a WorkItem for a test task."""
    return _make_item


@pytest.fixture
def run_one() -> Callable[..., WorkResult]:
    """``run_one(executor, item)``: submit and wait for its one report."""
    return _run_one
