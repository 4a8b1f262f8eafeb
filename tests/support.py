"""Helpers and fixtures for the cross-package tests (imported as `support`)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from nuvom_kernel.app import Nuvom, use_app
from nuvom_kernel.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["memory", "sqlite", "file"]


def installed_backends() -> list[str]:
    from nuvom_kernel.manager import NuvomPluginManager

    names = NuvomPluginManager(ROOT).load().registries["queue_backends"].names()
    return [b for b in BACKENDS if b in names]


def make_app(backend: str, root: Path, **overrides: Any) -> Nuvom:
    """An app on ``backend`` whose storage lives under ``root`` (fresh per test)."""
    settings: dict[str, Any] = dict(queue_backend=backend, result_backend=backend, log_level="WARNING",
                                    lease_secs=5.0, sweep_interval_secs=0.2, poll_interval_secs=0.2)
    settings.update(overrides)
    if backend == "memory":
        from nuvom_backend_memory import MemoryBackend

        mem = MemoryBackend()
        return Nuvom(root=root, environ={}, queue=mem, results=mem, **settings)
    return Nuvom(root=root, environ={}, **settings)


@pytest.fixture(params=installed_backends())
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(backend_name: str, tmp_path: Path) -> Iterator[Nuvom]:
    a = make_app(backend_name, tmp_path)
    with use_app(a):
        yield a
    a.close()


@pytest.fixture
def memory_app(tmp_path: Path) -> Iterator[Nuvom]:
    a = make_app("memory", tmp_path)
    with use_app(a):
        yield a


@contextmanager
def running_worker(app: Nuvom, **kwargs: Any) -> Iterator[Worker]:
    """A real worker loop in a thread of this process; stopped gracefully on exit."""
    kwargs.setdefault("concurrency", 4)
    worker = Worker(app, **kwargs)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target, name="test-worker", daemon=True)
    thread.start()
    assert worker.wait_ready(15), "worker did not become ready"
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(30)
        assert not thread.is_alive(), "worker did not stop within 30 s"
        if errors:
            raise errors[0]


@pytest.fixture
def worker_factory() -> Callable[..., Any]:
    return running_worker


def subprocess_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env["NUVOM_PROJECT_ROOT"] = str(root)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def nuvom_cmd() -> list[str]:
    return [sys.executable, "-m", "nuvom_cli"]
