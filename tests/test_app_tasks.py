"""Tasks registered per app (``@app.task``) next to module-level ``@task`` tasks."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from support import make_app, running_worker

from nuvom_kernel.app import use_app
from nuvom_kernel.errors import TaskNotFoundError
from nuvom_kernel.task import registry, task


@task(name="apptasks.shared")
def shared(x: int) -> int:
    return x + 1


def test_two_apps_register_the_same_name_independently(tmp_path: Path) -> None:
    first, second = make_app("memory", tmp_path / "a"), make_app("memory", tmp_path / "b")

    @first.task(name="apptasks.which")
    def which_first() -> str:
        return "first"

    @second.task(name="apptasks.which")
    def which_second() -> str:
        return "second"

    assert first.tasks.find("apptasks.which") is which_first and second.tasks.find("apptasks.which") is which_second
    assert registry.find("apptasks.which") is None  # not a module-level task
    assert first.tasks.find("apptasks.shared") is shared  # module-level tasks are known to every app
    assert "apptasks.shared" in second.tasks.names() and "apptasks.which" in second.tasks.names()
    with pytest.raises(TaskNotFoundError):
        make_app("memory", tmp_path / "c").tasks.get("apptasks.which")
    with running_worker(first, concurrency=1), running_worker(second, concurrency=1):
        with use_app(second):  # a bound task goes to its own app whatever app is current
            one = which_first.delay()
            two = which_second.delay()
            three = shared.delay(1)  # a module-level task goes to the current app
        assert one.app is first and two.app is second and three.app is second
        assert (one.result(timeout=30), two.result(timeout=30), three.result(timeout=30)) == ("first", "second", 2)
    first.close()
    second.close()


BOUND_MODULE = """
from nuvom_kernel.app import Nuvom

app = Nuvom(root={root!r}, environ={{}}, executor="process", lease_secs=5.0, sweep_interval_secs=0.2,
            poll_interval_secs=0.2, log_level="WARNING")


@app.task(name="apptasks.in_child")
def in_child(x):
    import os
    return [x * 3, os.getpid()]
"""


def test_a_bound_task_runs_in_the_process_executor_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bound_tasks.py").write_text(BOUND_MODULE.format(root=str(tmp_path)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("bound_tasks", None)
    module = importlib.import_module("bound_tasks")
    import os

    with running_worker(module.app, concurrency=1):
        value, pid = module.in_child.delay(4).result(timeout=60)
    assert value == 12 and pid != os.getpid()
    module.app.close()
