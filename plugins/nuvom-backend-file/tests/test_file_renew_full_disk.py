"""Renewing a lease allocates nothing: it moves the ``run/`` file's mtime.

Before, a renewal rewrote the job's record (a new file, then a rename), so on
a full disk every renewal failed, the leases of healthy jobs expired and the
first sweep after a little space came back ran them a second time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nuvom_backend_file import FileBackend

from nuvom_kernel.models import Job, JobState, Outcome

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _claim_running(backend: FileBackend, n: int, lease_secs: float) -> dict[str, int]:
    backend.enqueue_many([Job(task="t") for _ in range(n)])
    claimed = backend.claim(["default"], n, lease_secs, "w1", start_now=n)
    assert len(claimed) == n and all(j.state == JobState.RUNNING for j in claimed)
    return {j.id: j.token for j in claimed}


def test_renew_keeps_the_record_file_and_extends_the_lease(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "jobs", fsync=False)
    try:
        leases = _claim_running(backend, 2, lease_secs=1.0)
        job_id = next(iter(leases))
        run = tmp_path / "jobs" / "run" / f"{job_id}.job"
        inode, before = run.stat().st_ino, backend.get(job_id)
        assert before is not None and before.lease_expires_at is not None
        assert backend.renew(leases, 30.0) == set()
        after = backend.get(job_id)
        assert run.stat().st_ino == inode  # not rewritten
        assert after is not None and after.lease_expires_at is not None
        assert after.lease_expires_at >= before.lease_expires_at + 25
        time.sleep(1.2)  # past the first lease: the renewed one holds
        assert backend.sweep() == 0
        assert backend.finish(job_id, leases[job_id], Outcome(kind="succeeded", result=1)) is True
        # a stale token is still refused, and a finished job's lease is gone
        assert backend.renew({job_id: leases[job_id]}, 30.0) == {job_id}
    finally:
        backend.close()


def test_an_expired_lease_is_not_revived_by_a_write(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "jobs", fsync=False)
    try:
        leases = _claim_running(backend, 1, lease_secs=0.3)
        job_id, token = next(iter(leases.items()))
        time.sleep(0.6)
        backend.set_progress(job_id, token, 50)  # rewrites the record: mtime = now, not the future
        time.sleep(0.1)
        assert backend.sweep() == 1
        job = backend.get(job_id)
        assert job is not None and job.state == JobState.QUEUED
    finally:
        backend.close()


@contextlib.contextmanager
def _small_tmpfs(size: str) -> Iterator[Path | None]:
    where = Path(tempfile.mkdtemp(prefix="nuvom-renew-"))
    mounted = IS_ROOT and sys.platform.startswith("linux") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True).returncode == 0
    try:
        yield where if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def _fill(directory: Path) -> list[Path]:
    """Write files until not one more page fits (64 KB, then 4 KB ones); the
    files, largest first, to free later."""
    chunks: list[Path] = []
    for size in (65536, 4096):
        block = b"x" * size
        while True:
            path = directory / f"fill-{len(chunks)}"
            try:
                with open(path, "wb") as fh:
                    fh.write(block)
                    fh.flush()
            except OSError:
                path.unlink(missing_ok=True)
                break
            chunks.append(path)
    return chunks


@pytest.mark.skipif(not IS_ROOT or not sys.platform.startswith("linux"), reason="needs root on Linux to mount a tmpfs")
def test_leases_survive_a_full_disk_and_nothing_runs_twice() -> None:
    with _small_tmpfs("2m") as mount:
        if mount is None:
            pytest.skip("could not mount a small tmpfs")
        backend = FileBackend(mount / "jobs", fsync=False)
        try:
            leases = _claim_running(backend, 3, lease_secs=1.0)
            chunks = _fill(mount)
            assert chunks, "the tmpfs did not fill"
            with pytest.raises(OSError):  # truly full: not even a job record fits
                backend.enqueue(Job(task="t"))
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:  # a heartbeat every 0.3 s on a full disk
                assert backend.renew(leases, 1.0) == set()
                time.sleep(0.3)
            for path in chunks[:2]:  # a little space comes back
                path.unlink()
            assert backend.sweep() == 0, "a sweep requeued jobs whose leases were renewed"
            for job_id, token in leases.items():
                assert backend.finish(job_id, token, Outcome(kind="succeeded", result=job_id)) is True
            states = {backend.get(j).state for j in leases}  # type: ignore[union-attr]
            assert states == {JobState.SUCCEEDED}
        finally:
            backend.close()
