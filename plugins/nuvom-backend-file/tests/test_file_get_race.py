"""``get`` never misses a job that is being claimed, finished or requeued."""

from __future__ import annotations

import threading
from pathlib import Path

from nuvom_backend_file.backend import FileBackend

from nuvom_kernel.models import Job, Outcome


def test_get_finds_jobs_while_they_move(tmp_path: Path) -> None:
    mover = FileBackend(tmp_path / "jobs")
    reader = FileBackend(tmp_path / "jobs")
    jobs = mover.enqueue_many([Job(task="t", max_retries=1000) for _ in range(20)])
    stop = threading.Event()
    misses: list[str] = []

    def churn() -> None:
        while not stop.is_set():
            for job in mover.claim(["default"], 5, 30, "w"):
                mover.finish(job.id, job.token or 0, Outcome(kind="retry"))  # back to ready/

    def read() -> None:
        for _ in range(40):
            for job in jobs:
                if reader.get(job.id) is None:
                    misses.append(job.id)

    t = threading.Thread(target=churn)
    t.start()
    try:
        read()
    finally:
        stop.set()
        t.join(30)
        mover.close()
        reader.close()
    assert misses == []
