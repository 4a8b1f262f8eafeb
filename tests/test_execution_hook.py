"""``nuvom_execute_job`` wraps the task call where it runs: thread, coroutine, child process."""

from __future__ import annotations

import importlib
import os
import re
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from support import make_app, running_worker

from nuvom_kernel.app import use_app
from nuvom_kernel.manager import NuvomPluginManager

DOCS = Path(__file__).resolve().parent.parent / "docs"

TASKS = """
import asyncio
import contextvars

from nuvom import task

@task(name="tracing.add")
def add(a, b):
    return a + b

@task(name="tracing.fail", retries=0)
def fail():
    raise ValueError("no")

@task(name="tracing.async_add")
async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b
"""


def tracing_example() -> str:
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    section = text.split("## Wrapping the task call", 1)[1]
    return textwrap.dedent(section.split("```python\n", 1)[1].split("```", 1)[0])


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin: str, name: str = "tracing_plugin") -> Any:
    (tmp_path / f"{name}.py").write_text(plugin, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text(f'[plugins]\nmodules = ["./{name}.py"]\n', encoding="utf-8")
    (tmp_path / "tracing_tasks.py").write_text(TASKS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tracing_tasks", None)
    return importlib.import_module("tracing_tasks")


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_the_tracing_example_runs_where_the_task_runs(executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    tasks = _project(tmp_path, monkeypatch, tracing_example())
    app = make_app("sqlite", tmp_path, executor=executor)
    with use_app(app), running_worker(app, concurrency=2):
        ok = tasks.add.delay(2, 3)
        failed = tasks.fail.delay()
        coroutine = tasks.async_add.delay(4, 5)
        assert ok.result(timeout=60) == 5 and coroutine.result(timeout=60) == 9
        with pytest.raises(Exception, match="no"):
            failed.result(timeout=60)
        deadline = time.monotonic() + 30
        out = ""
        while out.count("trace: ") < 3 and time.monotonic() < deadline:  # children print on their own
            out += capfd.readouterr().out
            time.sleep(0.05)
    app.close()
    lines = {m.group(1): m for m in re.finditer(
        r"trace: (tracing\.\w+) job=(\w+) attempt=1 pid=(\d+) (ok|error \w+) in [\d.]+s", out)}
    assert set(lines) == {"tracing.add", "tracing.fail", "tracing.async_add"}, out
    assert lines["tracing.add"].group(2) == ok.id  # current_job() inside the wrapper is the job
    assert lines["tracing.fail"].group(4) == "error ValueError" and lines["tracing.add"].group(4) == "ok"
    pids = {int(m.group(3)) for m in lines.values()}
    if executor == "thread":
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids


CONTEXT_PLUGIN = """
import contextvars

import nuvom

SPAN = contextvars.ContextVar("span", default=None)


@nuvom.hookimpl(wrapper=True)
def nuvom_execute_job(job, task):
    token = SPAN.set(f"span-{job.id}")
    try:
        return (yield)
    finally:
        SPAN.reset(token)
"""

OLD_STYLE_AND_BROKEN = """
import nuvom

events = []


@nuvom.hookimpl(hookwrapper=True)
def nuvom_execute_job(job):
    events.append(("before", job.task))
    outcome = yield
    events.append(("after", job.task, outcome.get_result()))


class Broken:  # registered as an instance, below
    @nuvom.hookimpl(wrapper=True, tryfirst=True)
    def nuvom_execute_job(self, task):
        raise RuntimeError("broken tracer")
        yield


broken = Broken()
"""


def _loaded(tmp_path: Path, stem: str) -> Any:
    path = str((tmp_path / f"{stem}.py").resolve())
    return next(m for name, m in list(sys.modules.items())
                if name.startswith("nuvom_local_plugin_") and getattr(m, "__file__", None) == path)


def test_a_context_variable_set_by_the_wrapper_is_seen_by_an_async_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(tmp_path, monkeypatch, CONTEXT_PLUGIN, name="context_plugin")
    app = make_app("memory", tmp_path, executor="thread")
    assert app.plugins.wraps_execution()
    span = _loaded(tmp_path, "context_plugin").SPAN
    from nuvom_kernel.task import task

    @task(name="tracing.read_span")
    async def read_span() -> Any:
        return span.get()

    @task(name="tracing.read_span_sync")
    def read_span_sync() -> Any:
        return span.get()

    with use_app(app), running_worker(app, concurrency=1):
        handle, sync = read_span.delay(), read_span_sync.delay()
        assert handle.result(timeout=30) == f"span-{handle.id}"
        assert sync.result(timeout=30) == f"span-{sync.id}"
    assert span.get() is None
    app.close()


def test_old_style_wrappers_and_a_broken_wrapper_around_sync_and_async_tasks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    tasks = _project(tmp_path, monkeypatch, OLD_STYLE_AND_BROKEN, name="wrappers")
    (tmp_path / ".nuvom_plugins.toml").write_text(
        '[plugins]\nmodules = ["./wrappers.py", "./wrappers.py:broken"]\n', encoding="utf-8")
    app = make_app("memory", tmp_path, executor="thread")
    with use_app(app), running_worker(app, concurrency=1):
        assert tasks.add.delay(1, 2).result(timeout=30) == 3
        assert tasks.async_add.delay(3, 4).result(timeout=30) == 7
    app.close()
    assert _loaded(tmp_path, "wrappers").events == [
        ("before", "tracing.add"), ("after", "tracing.add", 3),
        ("before", "tracing.async_add"), ("after", "tracing.async_add", 7)]
    assert caplog.text.count("RuntimeError: broken tracer") == 2
    assert "plugin ./wrappers.py:broken raised in nuvom_execute_job" in caplog.text


def test_a_plain_implementation_of_the_execution_hook_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain_exec.py").write_text(textwrap.dedent("""
        import nuvom

        @nuvom.hookimpl
        def nuvom_execute_job(job, task):
            return 42
    """), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./plain_exec.py"]\n', encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    record = next(r for r in pm.plugin_status() if r.name == "./plain_exec.py")
    assert not record.loaded and "wrapper=True" in (record.error or "") and "nuvom_execute_job" in (record.error or "")
    assert not pm.wraps_execution() and pm.execution_plugins() == ()
