"""Functions run in spawned child processes by the SQLite tests.

Not a test module: the tests put this folder on ``sys.path`` so that spawn
children (which inherit ``sys.path``) can import it by name.
"""

from __future__ import annotations

import threading
from typing import Any

from nuvom_backend_sqlite import SqliteBackend

from nuvom_kernel.contracts import Completion
from nuvom_kernel.models import Job, Outcome
from nuvom_support.doorbell import UdpDoorbell


def drain(path: str, worker: str, expected_total: int, batch: int = 8) -> list[tuple[str, int]]:
    """Claim and finish jobs until ``expected_total`` jobs are finished overall."""
    backend = SqliteBackend(path)
    seen: list[tuple[str, int]] = []
    pending: list[Completion] = []
    try:
        while True:
            _, claimed, _ = backend.exchange(pending, ["default"], batch, 60.0, worker, start_now=batch)
            pending = [Completion(j.id, j.token or 0, Outcome(kind="succeeded", result=worker)) for j in claimed]
            seen.extend((j.id, j.token or 0) for j in claimed)
            if not claimed and not pending:
                done = backend.counts().get("default", {}).get("succeeded", 0)
                if done >= expected_total:
                    return seen
    finally:
        backend.close()


def produce(path: str, prefix: str, count: int) -> int:
    backend = SqliteBackend(path)
    try:
        for i in range(count):
            if i % 2:
                backend.enqueue(Job(id=f"{prefix}-{i}", task="t"))
            else:
                backend.enqueue_many([Job(id=f"{prefix}-{i}", task="t")])
        return count
    finally:
        backend.close()


def enqueue_one(path: str, job_id: str) -> None:
    backend = SqliteBackend(path)
    try:
        backend.enqueue(Job(id=job_id, task="t"))
    finally:
        backend.close()


def listen(directory: str, ready: Any, heard: Any, rings_wanted: int) -> None:
    """Subscribe to a doorbell, say so, and report each wake-up."""
    bell = UdpDoorbell(directory)
    woke = threading.Event()
    bell.subscribe(woke.set)
    ready.put(bell.port)
    try:
        for _ in range(rings_wanted):
            if not woke.wait(60):
                heard.put("timeout")
                return
            woke.clear()
            heard.put("rang")
    finally:
        bell.close()


def enqueue_inherited(backend: SqliteBackend, job_id: str) -> None:
    """Use a backend object inherited through fork (POSIX users may fork)."""
    backend.enqueue(Job(id=job_id, task="t"))
