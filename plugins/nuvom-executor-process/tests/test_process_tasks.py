"""What a task sees in a child and what comes back: async, Retry, errors, progress, options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nuvom_executor_process import ProcessExecutor, ProcessOptions
from nuvom_executor_process.memory import peak_rss_mb
from nuvom_executor_process.results import ChildTaskError, describe_exit

from nuvom_kernel.app import Nuvom
from nuvom_kernel.context import JobContext
from nuvom_kernel.errors import ConfigError, Retry
from nuvom_kernel.execution import decide
from nuvom_kernel.task import get_task
from nuvom_kernel.testing.executor_contract import Collector

Make = Callable[..., ProcessExecutor]
Item = Callable[..., Any]
RunOne = Callable[..., Any]


def test_async_tasks_share_one_loop_per_child(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    first = run_one(ex, item("proc.async_info", 1))
    second = run_one(ex, item("proc.async_info", 2))
    sync_pid = run_one(ex, item("proc.pid")).value
    assert first.ok and second.ok
    assert first.value[0] == second.value[0] == sync_pid  # sync and async mix in one child
    assert first.value[1] == second.value[1]  # the same event loop, not one per job
    assert [first.value[2], second.value[2]] == [1, 2]


def test_retry_keeps_its_meaning_and_delay(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    work = item("proc.retry", 2.5)
    result = run_one(ex, work)
    assert not result.ok and isinstance(result.exception, Retry)
    assert result.exception.delay == 2.5 and result.exception.reason == "not yet"
    assert result.error is not None and result.error.type == "nuvom_kernel.errors.Retry"
    work.job.max_retries = 1
    outcome = decide(work.job, get_task("proc.retry"), result)
    assert outcome.kind == "retry" and outcome.eta is not None
    assert outcome.eta - outcome.at == pytest.approx(2.5)


def test_retry_on_is_decided_as_on_threads(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    task = get_task("proc.retry_on")
    not_listed = item("proc.retry_on", "value")
    not_listed.job.max_retries = 3
    result = run_one(ex, not_listed)
    assert isinstance(result.exception, ChildTaskError)
    assert decide(not_listed.job, task, result).kind == "failed"
    listed = item("proc.retry_on", "key")
    listed.job.max_retries = 3
    result = run_one(ex, listed)
    assert result.exception is None and result.error is not None and result.error.type == "builtins.KeyError"
    assert decide(listed.job, task, result).kind == "retry"


def test_errors_travel_as_plain_data(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    result = run_one(ex, item("proc.custom_error", "it broke", attempts=2))
    assert not result.ok and result.exception is None
    assert result.error is not None
    assert result.error.type == "proc_tasks.ProcCustomError" and result.error.message == "it broke"
    assert result.error.attempt == 2 and "raise ProcCustomError(message)" in result.error.traceback
    exited = run_one(ex, item("proc.system_exit"))
    assert not exited.ok and not exited.crashed and exited.error.type == "builtins.SystemExit"
    assert run_one(ex, item("proc.pid")).ok  # the child survived the SystemExit


def test_unpicklable_result_is_a_clear_error(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    result = run_one(ex, item("proc.unpicklable"))
    assert not result.ok and result.error is not None
    assert result.error.type == "nuvom_kernel.errors.PayloadError"
    assert "cannot be sent from the process executor's child" in result.error.message


def test_unknown_task_or_module_in_the_child(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    ghost = item("proc.pid")
    ghost.job.task = "proc.not_defined"
    result = run_one(ex, ghost)
    assert result.error is not None and "'proc.not_defined' is not registered" in result.error.message
    broken = item("proc.pid")
    broken.job.task = "other.task"
    broken.modules = ("no_such_module_for_nuvom",)
    result = run_one(ex, broken)
    assert result.error is not None and "ModuleNotFoundError" in result.error.message


def test_progress_reaches_the_parent(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    work = item("proc.progress", 3)
    assert run_one(ex, work).value == 3
    assert work.job.progress == {"done": 3, "total": 3}


def test_progress_goes_through_the_workers_context(make_executor: Make, item: Item, run_one: RunOne) -> None:
    """When the worker hands over its JobContext, progress is stored through its queue."""

    class RecordingQueue:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int, Any]] = []

        def set_progress(self, job_id: str, token: int, progress: Any) -> bool:
            self.calls.append((job_id, token, progress))
            return True

    ex = make_executor()
    work = item("proc.progress", 2)
    work.job.token = 7
    queue = RecordingQueue()
    work.context = JobContext(job=work.job, queue=queue)  # type: ignore[attr-defined,arg-type]
    assert run_one(ex, work).ok
    assert queue.calls == [(work.job.id, 7, {"done": 1, "total": 2}), (work.job.id, 7, {"done": 2, "total": 2})]


def test_many_jobs_on_two_children(make_executor: Make, item: Item) -> None:
    ex = make_executor(concurrency=2)
    done = Collector()
    items = [item("proc.e2e_add", i, 1) for i in range(100)]
    for work in items:
        ex.submit(work, done)
    values = sorted(r.value[0] for r in done.wait(100, timeout=120))
    assert values == [i + 1 for i in range(100)]


def test_options_from_the_plugins_file(tmp_path: Path) -> None:
    (tmp_path / ".nuvom_plugins.toml").write_text(
        "[plugins.settings.nuvom-executor-process]\nmax_tasks_per_child = 50\nmax_memory_per_child = 512\n"
    )
    app = Nuvom(root=tmp_path, environ={})
    ex = app.create_executor("process")
    assert isinstance(ex, ProcessExecutor) and ex.name == "process"
    assert ex.options.max_tasks_per_child == 50 and ex.options.max_memory_per_child == 512.0
    assert ex.root == tmp_path.resolve()


@pytest.mark.parametrize(("options", "message"), [
    ({"max_task_per_child": 3}, "unknown option(s) max_task_per_child"),
    ({"max_tasks_per_child": -1}, "max_tasks_per_child=-1"),
    ({"max_tasks_per_child": 2.5}, "use a whole number > 0"),
    ({"max_memory_per_child": "lots"}, "max_memory_per_child='lots'"),
    ({"start_timeout_secs": 0}, "start_timeout_secs=0"),
    ({"terminate_grace_secs": True}, "use a number"),
])
def test_bad_options_are_refused_with_the_key_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="nuvom-executor-process") as info:
        ProcessOptions.from_mapping(options)
    assert message in str(info.value)


def test_zero_means_no_limit() -> None:
    opts = ProcessOptions.from_mapping({"max_tasks_per_child": 0, "max_memory_per_child": 0})
    assert opts.max_tasks_per_child is None and opts.max_memory_per_child is None


def test_helpers() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-15) == "was killed by signal SIGTERM (15)"
    assert describe_exit(None) == "did not exit"
    measured = peak_rss_mb()
    assert measured is not None and measured > 1
