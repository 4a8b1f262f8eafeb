"""No hidden globals: the current app is per thread/task, and the library leaves logging alone."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import make_app, running_worker

from nuvom_kernel.app import Nuvom, get_app, use_app
from nuvom_kernel.task import task


@task(name="globals.which_app")
def which_app() -> str:
    return str(get_app().root)


@task(name="globals.noop")
def noop(i: int) -> int:
    return i


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def host_handler() -> Iterator[_Collect]:
    """A host application's handler on the root logger, as `logging.basicConfig` would add."""
    root = logging.getLogger()
    handler = _Collect()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_constructing_an_app_does_not_touch_logging(tmp_path: Path, host_handler: _Collect) -> None:
    logger = logging.getLogger("nuvom")
    before = (list(logger.handlers), logger.propagate, logger.level)
    app = Nuvom(root=tmp_path, environ={"NUVOM_LOG_LEVEL": "ERROR"})
    assert (list(logger.handlers), logger.propagate, logger.level) == before
    logging.getLogger("nuvom.worker").warning("a nuvom record")
    assert any(r.getMessage() == "a nuvom record" and r.name == "nuvom.worker" for r in host_handler.records)
    app.close()


def test_a_host_handler_sees_a_plugin_failure_logged_by_nuvom(tmp_path: Path, host_handler: _Collect) -> None:
    (tmp_path / "failing.py").write_text(
        "from nuvom_kernel import hookimpl\n\n@hookimpl\ndef nuvom_job_enqueued(job):\n    raise RuntimeError('observer down')\n",
        encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./failing.py"]\n', encoding="utf-8")
    app = make_app("memory", tmp_path)
    with use_app(app):
        noop.delay(1)
    messages = [r.getMessage() for r in host_handler.records if r.name.startswith("nuvom")]
    assert any("raised in nuvom_job_enqueued" in m for m in messages), messages
    app.close()


def test_two_apps_in_two_threads_stay_independent(tmp_path: Path) -> None:
    apps = [make_app("memory", tmp_path / name) for name in ("a", "b")]
    both_inside = threading.Barrier(2, timeout=30)
    seen: dict[int, object] = {}
    errors: list[BaseException] = []

    def producer(index: int) -> None:
        try:
            with use_app(apps[index]):
                both_inside.wait()  # both threads have installed their app
                for i in range(5 + index):
                    noop.delay(i)
                seen[index] = get_app()
                both_inside.wait()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert seen == {0: apps[0], 1: apps[1]}
    assert [len(app.list_jobs(limit=100)) for app in apps] == [5, 6]
    with use_app(apps[0]):
        assert get_app() is apps[0]
        with use_app(apps[1]):
            assert get_app() is apps[1]
        assert get_app() is apps[0]
    for app in apps:
        app.close()


def test_a_task_run_by_a_worker_sees_the_worker_app_as_current(tmp_path: Path) -> None:
    app = make_app("memory", tmp_path)
    with running_worker(app, concurrency=1):
        handle = which_app.options(app=app).delay()
        assert handle.result(timeout=30) == str(app.root)
    app.close()
