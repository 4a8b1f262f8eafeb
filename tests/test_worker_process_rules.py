"""The execution rules of docs/execution.md on the process executor, every backend.

(tests/test_worker_e2e.py proves them on the thread executor; the process
executor's own tests cover hard timeouts, crashes and progress.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import proc_rules_tasks as t
import pytest
from support import make_app, running_worker

import nuvom
import nuvom.sdk
from nuvom import JobState
from nuvom_kernel.app import Nuvom, use_app


@pytest.fixture
def papp(backend_name: str, tmp_path: Path) -> Iterator[Nuvom]:
    app = make_app(backend_name, tmp_path, executor="process")
    with use_app(app):
        yield app
    app.close()


def test_every_attempt_error_is_kept(papp: Nuvom) -> None:
    with running_worker(papp, concurrency=2):
        h = t.fail_always.delay()
        with pytest.raises(t.RemoteError, match="attempt 3 failed"):  # rebuilt: its class is imported here
            h.result(timeout=60)
    job = h.job()
    assert job.attempts == 3 and [e.message for e in job.errors] == [f"attempt {i} failed" for i in (1, 2, 3)]
    assert all("RemoteError" in e.traceback for e in job.errors)


def test_retry_and_retry_on(papp: Nuvom) -> None:
    with running_worker(papp, concurrency=2):
        assert t.ask_retry.delay().result(timeout=60) == 2
        v = t.only_key_errors.delay("value")
        with pytest.raises(ValueError):
            v.result(timeout=60)
        assert v.job().attempts == 1
        k = t.only_key_errors.delay("key")
        with pytest.raises(KeyError):
            k.result(timeout=60)
        assert k.job().attempts == 4


def test_hooks_run_around_the_attempt(papp: Nuvom, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    with running_worker(papp, concurrency=1):
        assert t.hooked.delay(False, log=str(log)).result(timeout=60) == "fine"
        with pytest.raises(ValueError):
            t.hooked.delay(True, log=str(log)).result(timeout=60)
    assert log.read_text(encoding="utf-8").split() == ["before", "after:fine", "before", "error:ValueError"]


def test_time_remaining_in_a_child(papp: Nuvom) -> None:
    with running_worker(papp, concurrency=1):
        left = t.remaining.delay().result(timeout=60)
    assert 0 < left <= 30


def test_cancel_terminates_a_running_child(papp: Nuvom, tmp_path: Path) -> None:
    started = tmp_path / "started"
    with running_worker(papp, concurrency=1):
        h = t.block.delay(str(started))
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.01)
        begin = time.monotonic()
        nuvom.sdk.cancel_job(h.id, app=papp)
        final = h.wait(timeout=60)
        assert final.state == JobState.CANCELLED
        assert time.monotonic() - begin < 15  # terminated, not waited out (the task sleeps 60 s)
