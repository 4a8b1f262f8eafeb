"""An idle worker wakes when a retry it scheduled becomes due, not at its next poll."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from support import make_app, running_worker

from nuvom import task
from nuvom_kernel.app import use_app

_attempts: dict[str, int] = {}
_lock = threading.Lock()


@task(name="wake.fails_once", retries=1, retry_delay_secs=0.3)
def fails_once(key: str) -> str:
    with _lock:
        _attempts[key] = _attempts.get(key, 0) + 1
        n = _attempts[key]
    if n == 1:
        raise RuntimeError("first attempt fails")
    return f"ok on {n}"


def test_retry_runs_when_due_even_with_a_long_poll(backend_name: str, tmp_path: Path) -> None:
    # the poll interval is far longer than the bound below: only the retry's eta can wake the worker
    app = make_app(backend_name, tmp_path, poll_interval_secs=120.0)
    try:
        with use_app(app), running_worker(app):
            started = time.monotonic()
            handle = fails_once.delay(str(tmp_path))
            assert handle.result(timeout=60) == "ok on 2"
            assert time.monotonic() - started < 30  # well under one 120 s poll
    finally:
        app.close()
