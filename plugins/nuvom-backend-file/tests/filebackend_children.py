"""Code run in spawned child processes by test_file_processes.py (importable by
plain name because the test puts this folder on sys.path, which spawn passes on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nuvom_backend_file import FileBackend

from nuvom_kernel.models import Job, Outcome


def drain(root: str, out: str, start: Any) -> None:
    """Claim and finish until the queue stays empty; write every claimed id."""
    backend = FileBackend(root, fsync=False)
    claimed: list[str] = []
    start.wait(60)
    try:
        while True:
            got = backend.claim(["default"], 8, 60.0, f"pid-{out}")
            if not got:
                live = backend.counts().get("default", {})
                if not live.get("queued") and not live.get("running"):
                    break
                continue
            for job in got:
                claimed.append(job.id)
                if not backend.finish(job.id, job.token or 0, Outcome(kind="succeeded", result=job.args[0])):
                    claimed.append(f"REFUSED {job.id}")
    finally:
        backend.close()
        Path(out).write_text("\n".join(claimed))


def enqueue_unique(root: str, out: str, start: Any) -> None:
    backend = FileBackend(root, fsync=False)
    start.wait(60)
    try:
        ids = [backend.enqueue(Job(task="t", unique_key="one-per-key")).id for _ in range(10)]
    finally:
        backend.close()
    Path(out).write_text("\n".join(ids))
