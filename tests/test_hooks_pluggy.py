"""Every hook goes through pluggy: wrappers, argument subsets, tracing, isolation."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from nuvom_backend_memory import MemoryBackend

from nuvom_kernel.app import Nuvom
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.models import Job


def _plugins(tmp_path: Path, **sources: str) -> None:
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    listed = ", ".join(f'"./{name}.py"' for name in sources)
    (tmp_path / ".nuvom_plugins.toml").write_text(f"[plugins]\nmodules = [{listed}]\n", encoding="utf-8")


def _module(tmp_path: Path, stem: str) -> Any:
    """The module a plugin file of this test was loaded as."""
    path = str((tmp_path / f"{stem}.py").resolve())
    return next(m for name, m in list(sys.modules.items())
                if name.startswith("nuvom_local_plugin_") and getattr(m, "__file__", None) == path)


WRAPPERS = """
    from nuvom_kernel import hookimpl
    events = []

    @hookimpl(wrapper=True)
    def nuvom_job_enqueued(job):
        events.append(("new-style before", job.id))
        result = yield
        events.append(("new-style after", job.id))
        return result

    @hookimpl(hookwrapper=True)
    def nuvom_job_finished(record):
        events.append(("old-style before", record.id))
        outcome = yield
        events.append(("old-style after", outcome.exception))
"""

PLAIN = """
    from nuvom_kernel import hookimpl
    events = []

    @hookimpl
    def nuvom_job_enqueued(job):
        events.append(("plain", job.id))

    @hookimpl
    def nuvom_job_finished(record):  # takes one of the hook's two arguments
        events.append(("finished", record.id))

    @hookimpl
    def nuvom_register_queue_backends():  # takes none of the hook's arguments
        events.append(("registration called",))
"""


def test_new_and_old_style_wrappers_run_around_plain_implementations(tmp_path: Path) -> None:
    _plugins(tmp_path, wrappers_plugin=WRAPPERS, plain_plugin=PLAIN)
    app = Nuvom(root=tmp_path, environ={}, queue=MemoryBackend())
    job = app.enqueue(Job(task="x"))
    app.plugins.job_finished(job, job)
    app.plugins.registries  # noqa: B018
    wrappers, plain = _module(tmp_path, "wrappers_plugin"), _module(tmp_path, "plain_plugin")
    assert wrappers.events == [("new-style before", job.id), ("new-style after", job.id),
                               ("old-style before", job.id), ("old-style after", None)]
    assert [e for e in plain.events if e[0] != "registration called"] == [("plain", job.id), ("finished", job.id)]
    assert plain.events.count(("registration called",)) == 1
    status = {r.name: r for r in app.plugins.plugin_status()}
    assert status["./wrappers_plugin.py"].hooks == ["nuvom_job_enqueued", "nuvom_job_finished"]
    assert status["./plain_plugin.py"].error is None


BROKEN_WRAPPER = """
    from nuvom_kernel import hookimpl

    @hookimpl(wrapper=True)
    def nuvom_job_enqueued(job):
        raise RuntimeError("tracer down before yield")
        yield

    @hookimpl(wrapper=True)
    def nuvom_job_finished(job, record):
        yield
        raise RuntimeError("tracer down after yield")

    @hookimpl
    def nuvom_job_dead(job, reason):
        raise RuntimeError("alerting down")
"""


def test_a_failing_implementation_is_isolated_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _plugins(tmp_path, broken_wrapper=BROKEN_WRAPPER, plain_plugin=PLAIN)
    app = Nuvom(root=tmp_path, environ={}, queue=MemoryBackend())
    job = app.enqueue(Job(task="x"))
    app.plugins.job_finished(job, job)
    app.plugins.job_dead(job, "testing")
    events = [e for e in _module(tmp_path, "plain_plugin").events if e[0] != "registration called"]
    assert events == [("plain", job.id), ("finished", job.id)]
    for message in ("tracer down before yield", "tracer down after yield", "alerting down"):
        assert message in caplog.text
    assert "plugin ./broken_wrapper.py raised in nuvom_job_enqueued" in caplog.text
    assert "plugin ./broken_wrapper.py raised in nuvom_job_dead" in caplog.text


def test_failing_registration_is_recorded_on_the_plugin(tmp_path: Path) -> None:
    _plugins(tmp_path, bad_registration="""
        from nuvom_kernel import hookimpl

        @hookimpl
        def nuvom_register_executors(register):
            raise RuntimeError("cannot register")
    """, plain_plugin=PLAIN)
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    assert "thread" in pm.registries["executors"].names()  # the other plugins registered theirs
    record = next(r for r in pm.plugin_status() if r.name == "./bad_registration.py")
    assert record.error == "RuntimeError: cannot register" and "cannot register" in (record.traceback or "")


def test_a_wrapper_that_is_not_a_generator_is_refused_at_load(tmp_path: Path) -> None:
    _plugins(tmp_path, not_a_generator="""
        from nuvom_kernel import hookimpl

        @hookimpl(wrapper=True)
        def nuvom_job_started(job):
            return None
    """)
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    record = next(r for r in pm.plugin_status() if r.name == "./not_a_generator.py")
    assert not record.loaded
    assert "nuvom_job_started" in (record.error or "") and "wrapper=True" in (record.error or "")
    assert "./not_a_generator.py" in (record.error or "")


def test_tracing_uses_pluggy_hook_call_monitoring(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _plugins(tmp_path, plain_plugin=PLAIN, broken_wrapper=BROKEN_WRAPPER)
    app = Nuvom(root=tmp_path, environ={"NUVOM_TRACE_PLUGINS": "1"}, queue=MemoryBackend())
    app.enqueue(Job(task="x"))
    app.plugins.registries  # noqa: B018
    err = capfd.readouterr().err
    assert "[nuvom trace] nuvom_job_enqueued -> ./broken_wrapper.py, ./plain_plugin.py" in err \
        or "[nuvom trace] nuvom_job_enqueued -> ./plain_plugin.py, ./broken_wrapper.py" in err
    assert "[nuvom trace] nuvom_register_queue_backends ->" in err and "nuvom-backend-sqlite" in err


def test_hooks_nobody_implements_are_not_called(tmp_path: Path) -> None:
    pm = NuvomPluginManager(tmp_path, environ={"NUVOM_LOAD_PLUGINS": ""}).load()
    calls: list[str] = []
    pm.pm.add_hookcall_monitoring(lambda name, impls, kwargs: calls.append(name), lambda *args: None)
    pm.job_started(Job(task="x"))
    assert calls == []
    _plugins(tmp_path, plain_plugin=PLAIN)
    with_plugin = NuvomPluginManager(tmp_path, environ={"NUVOM_LOAD_PLUGINS": ""}).load()
    with_plugin.pm.add_hookcall_monitoring(lambda name, impls, kwargs: calls.append(name), lambda *args: None)
    with_plugin.job_enqueued(Job(task="x"))
    assert calls == ["nuvom_job_enqueued"]


def test_the_wrapper_example_in_hooks_md_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "hooks.md").read_text(encoding="utf-8")
    section = text.split("## How hooks are called", 1)[1]
    example = textwrap.dedent(section.split("```python\n", 1)[1].split("```", 1)[0])
    _plugins(tmp_path, timing_wrapper=example, plain_plugin=PLAIN)
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    job = Job(task="x")
    pm.job_finished(job, job)
    assert "observers took" in capsys.readouterr().out
    assert ("finished", job.id) in _module(tmp_path, "plain_plugin").events
