"""A job whose file cannot be decoded ends up visible as ``dead`` with a reason."""

from __future__ import annotations

from pathlib import Path

from nuvom_backend_file.backend import FileBackend

from nuvom_kernel.models import Job, JobState


def test_undecodable_job_file_is_dead_lettered(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "jobs")
    try:
        job = backend.enqueue(Job(task="t.ok"))
        [path] = [p for p in (tmp_path / "jobs" / "ready").rglob("*") if p.is_file() and job.id in p.name]
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF  # a bit flip in the payload: the checksum no longer matches
        path.write_bytes(bytes(data))
        assert backend.claim(["default"], 5, 30, "w") == []
        dead = backend.get(job.id)
        assert dead is not None and dead.state == JobState.DEAD
        assert dead.reason is not None and "could not be decoded" in dead.reason and "quarantined" in dead.reason
        assert list((tmp_path / "jobs" / "quarantine").glob(f"*{job.id}*"))
        good = backend.enqueue(Job(task="t.ok"))
        assert [j.id for j in backend.claim(["default"], 5, 30, "w")] == [good.id]
    finally:
        backend.close()
