"""Each app creates its stores once and owns their lifetime (``nuvom_register_storage``).

Two apps on the same SQLite file or job directory hold independent objects:
closing one leaves the other's connections and wake-ups working.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import running_worker

from nuvom import task
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import PluginError
from nuvom_kernel.registry import Registries


@task(name="owned.double")
def double(n: int) -> int:
    return 2 * n


def _app(root: Path, backend: str) -> Nuvom:
    return Nuvom(root=root, environ={}, queue_backend=backend, result_backend=backend, log_level="WARNING",
                 lease_secs=5.0, sweep_interval_secs=0.2, poll_interval_secs=30.0)


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_two_apps_on_one_store_are_independent(tmp_path: Path, backend: str) -> None:
    producer, worker_app = _app(tmp_path, backend), _app(tmp_path, backend)
    try:
        assert producer.queue is not worker_app.queue  # no process-wide cache behind the factory
        assert producer.results is producer.queue and worker_app.results is worker_app.queue
        first = double.options(app=producer).delay(1)
        with running_worker(worker_app, concurrency=2):
            assert first.result(timeout=30) == 2
            producer.close()  # closing the producer's store must not touch the worker's
            other = _app(tmp_path, backend)
            try:
                # The worker polls only every 30 s here: a result within a few
                # seconds means its wake-up subscription survived the close.
                started = time.monotonic()
                assert double.options(app=other).delay(20).result(timeout=20) == 40
                assert time.monotonic() - started < 15
            finally:
                other.close()
    finally:
        producer.close()
        worker_app.close()


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_closing_an_app_closes_the_store_it_created(tmp_path: Path, backend: str) -> None:
    app = _app(tmp_path, backend)
    store: Any = app.queue
    closed: list[Any] = []
    real_close = store.close
    store.close = lambda: (closed.append(store), real_close())
    app.close()
    assert closed == [store]  # once, though it served both roles
    again = app.queue  # used after close, the app creates a new store
    assert again is not store
    app.close()


def _registries_with(roles: Any) -> Registries:
    registries = Registries()
    registries.register_storage("scratch", lambda settings, options: object(), roles, "test", plugin="p")
    return registries


def test_storage_roles_choose_the_registries() -> None:
    both = _registries_with(("queue", "jobs", "results", "workers"))
    assert both["queue_backends"].get("scratch").roles == frozenset({"queue", "jobs", "results", "workers"})
    assert "scratch" in both["result_backends"]
    results_only = _registries_with(["results"])
    assert "scratch" in results_only["result_backends"] and "scratch" not in results_only["queue_backends"]


@pytest.mark.parametrize(
    ("roles", "message"),
    [("queue", r"roles='queue'; pass a list of role names"),
     (("queue", "qeue"), r"unknown role\(s\) qeue; known roles: queue, jobs, results, workers"),
     (("jobs",), r"must include \"queue\" or \"results\"")],
)
def test_bad_storage_roles_are_named(roles: Any, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        _registries_with(roles)
