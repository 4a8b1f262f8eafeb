"""A store that changes under a running process, and faults of the environment
(issue 16, points 5 and 8).

- The SQLite file removed (``rm -rf .nuvom``) or replaced under a live
  backend: the next write is refused with ``StoreReplacedError`` (not stored
  in a file nobody reads), later calls use the current file, and a running
  worker picks up jobs enqueued into the new file.
- A damaged SQLite file: one ``StoreCorruptError`` naming the file and how to
  recover; a process that finds the damage tells the others (a marker file).
- A database owned by another user, a read-only one, a directory given as the
  database path, a full disk: one-line ``StoreError`` subclasses from
  ``.delay()``/``enqueue``, ``nuvom stats`` (exit code 1) and ``nuvom
  runworker`` (exit code 1), on SQLite and the file backend; after a full
  disk the store works again once there is room.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nuvom_kernel.errors import (
    NuvomError,
    StoreAccessError,
    StoreCorruptError,
    StoreError,
    StoreReplacedError,
)
from nuvom_kernel.models import Job, JobState, Outcome
from reliability.checker import read_executions
from reliability.harness import BACKENDS, HERE, Project, describe, wait_until

POSIX = os.name == "posix"
IS_ROOT = POSIX and os.geteuid() == 0


def _job(n: int = 0) -> Job:
    return Job(task="rel.work", args=[n], max_retries=3, timeout_secs=None)


def _one_line(text: str) -> bool:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "Traceback" not in text and len(" ".join(lines)) > 0


def _cli(project: Project, *args: str, user: int | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nuvom_cli", *args], capture_output=True, text=True,
                          cwd=project.root, env=project.env(COLUMNS="400", **env), timeout=120, user=user)


# -- point 5: removed or replaced --------------------------------------------------


WINDOWS_SKIP = pytest.mark.skipif(os.name == "nt", reason="Windows cannot delete or replace a file that is open")


@WINDOWS_SKIP
def test_sqlite_removed_under_a_live_backend_refuses_the_next_enqueue(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", "sqlite")
    try:
        app = project.app
        app.enqueue(_job(1))
        shutil.rmtree(project.root / ".nuvom")
        time.sleep(1.2)  # past the identity check interval
        with pytest.raises(StoreReplacedError) as caught:
            app.enqueue(_job(2))
        message = str(caught.value)
        assert str(project.root / ".nuvom" / "result.db") in message and "removed" in message, message
        assert isinstance(caught.value, NuvomError)
        kept = app.enqueue(_job(3))  # the current (new) file from now on
    finally:
        project.close()
    other = Project(tmp_path / "proj", "sqlite")  # another process's view
    try:
        assert other.app.queue.get(kept.id) is not None, "the job went to a file no other process reads"
    finally:
        other.close()


@WINDOWS_SKIP
def test_sqlite_replaced_under_a_live_backend_is_noticed(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", "sqlite")
    try:
        app = project.app
        app.enqueue(_job(1))
        db = project.root / ".nuvom" / "result.db"
        spare = tmp_path / "spare.db"
        shutil.copy(db, spare)
        os.replace(spare, db)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{db}{suffix}")
        time.sleep(1.2)
        with pytest.raises(StoreReplacedError, match="replaced by another file"):
            app.enqueue(_job(2))
        app.enqueue(_job(3))
    finally:
        project.close()


@WINDOWS_SKIP
def test_sqlite_removed_under_a_running_worker_new_jobs_still_run(tmp_path: Path) -> None:
    """The issue's repro: ``rm -rf .nuvom`` under a live worker, then a producer
    enqueues into the new file.  Before: they "succeeded" and never ran."""
    project = Project(tmp_path / "proj", "sqlite", settings={"poll_interval_secs": "0.2"})
    try:
        worker = project.start_worker(concurrency=2)
        worker.wait_ready()
        first = project.enqueue_work(5, rng=__import__("random").Random(1))
        project.wait_drained(timeout=60)
        project.app.close()  # this process's producer goes away; the worker keeps running
        project._app = None
        assert worker.alive()
        shutil.rmtree(project.root / ".nuvom")
        started = time.monotonic()
        ids = [project.app.enqueue(_job(100 + n)).id for n in range(50)]  # a new producer, a new file
        wait_until(lambda: all((j := project.app.queue.get(i)) is not None and j.state == JobState.SUCCEEDED
                               for i in ids), 60, "the jobs enqueued into the new file to run")
        took = time.monotonic() - started
        project.stop_all()
        executions, _ = read_executions(project.exec_dir)
    finally:
        project.close()
    assert all(len(executions[i]) == 1 for i in ids)
    assert len(first) == 5
    describe({"property": "sqlite-removed-under-worker", "jobs_after_rm": len(ids), "all_ran_within_secs": round(took, 1)})


# -- point 5: damaged ------------------------------------------------------------------


def _garble(db: Path, pages: list[int]) -> None:
    """Overwrite whole pages (1-based) with bytes that are no valid b-tree page."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(db, "r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * page_size)
            fh.write(bytes([0x0D]) + os.urandom(page_size - 1))


def test_sqlite_garbled_database_gives_one_clear_error(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", "sqlite")
    db = project.root / ".nuvom" / "result.db"
    try:
        project.app.enqueue_many([_job(n) for n in range(300)])
        project.app.close()
        project._app = None
        size = db.stat().st_size
        page_size = 4096
        _garble(db, list(range(2, size // page_size + 1)))  # everything but the header page
        with pytest.raises(StoreCorruptError) as caught:  # a producer started after the damage
            project.app.enqueue(_job(1000))
        message = str(caught.value)
        assert str(db) in message and ".recover" in message and "\n" not in message, message
    finally:
        project.close()
    out = _cli(project, "stats")
    assert out.returncode == 1 and _one_line(out.stderr), out.stderr[-2000:]
    assert "damaged" in out.stderr and ".recover" in out.stderr, out.stderr
    out = _cli(project, "runworker", "--burst", "--no-manifest")
    assert out.returncode == 1 and _one_line(out.stderr) and "damaged" in out.stderr, out.stderr[-2000:]
    describe({"property": "sqlite-garbled", "stats_exit": 1, "message": message[:80]})


def test_sqlite_damage_found_by_one_process_stops_the_others(tmp_path: Path) -> None:
    """Only the finished-jobs index is damaged: a producer's enqueues never touch
    it, a worker's finish does.  The worker's finding must stop the producer
    too (before: it kept accepting jobs that the damaged store would not run)."""
    from nuvom_backend_sqlite import SqliteBackend

    db = tmp_path / "q.db"
    producer = SqliteBackend(db)
    try:
        producer.enqueue_many([_job(n) for n in range(3)])
        conn = sqlite3.connect(db)
        root_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs_finished'").fetchone()[0]
        conn.close()
        _garble(db, [root_page])
        worker = SqliteBackend(db)
        try:
            job = worker.claim(["default"], 1, 30.0, "w")[0]
            assert job.token is not None
            with pytest.raises(StoreCorruptError):
                worker.finish(job.id, job.token, Outcome(kind="succeeded", result=1))
        finally:
            worker.close()
        time.sleep(1.2)
        with pytest.raises(StoreCorruptError, match="damaged"):
            producer.enqueue(_job(99))
    finally:
        producer.close()


# -- point 8: environment faults -------------------------------------------------


def test_a_directory_as_the_database_path(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", "sqlite", settings={"sqlite_db_path": str(tmp_path / "adir")})
    (tmp_path / "adir").mkdir()
    try:
        with pytest.raises(StoreAccessError, match="is a directory"):
            project.app.enqueue(_job())
    finally:
        project.close()
    out = _cli(project, "stats")
    assert out.returncode == 1 and _one_line(out.stderr) and "is a directory" in out.stderr, out.stderr[-2000:]


def test_a_file_as_the_queue_directory(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    project = Project(tmp_path / "proj", "file", settings={"file_backend_dir": str(tmp_path / "afile")})
    try:
        with pytest.raises(StoreAccessError, match="is a file, not a directory"):
            project.app.enqueue(_job())
    finally:
        project.close()
    out = _cli(project, "stats")
    assert out.returncode == 1 and _one_line(out.stderr) and "not a directory" in out.stderr, out.stderr[-2000:]


@contextlib.contextmanager
def _world_readable_dir() -> Iterator[Path]:
    """A project directory another user can enter (pytest's tmp_path is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="nuvom-faults-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _nobody_can_run_python() -> bool:
    out = subprocess.run([sys.executable, "-c", "import nuvom_kernel"], capture_output=True, user=65534, timeout=60)
    return out.returncode == 0


_ENQUEUE_AS_OTHER = """
import sys, json
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import StoreError
from nuvom_kernel.models import Job
app = Nuvom(root=sys.argv[1], environ={}, queue_backend=sys.argv[2], result_backend=sys.argv[2])
try:
    app.enqueue(Job(task="t"))
    print(json.dumps({"ok": True}))
except StoreError as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "message": str(exc)}))
"""


@pytest.mark.skipif(not IS_ROOT, reason="needs root to act as another user")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault", ["owned-by-another-user", "read-only"])
def test_a_store_this_user_may_not_write(backend: str, fault: str) -> None:
    if not _nobody_can_run_python():
        pytest.skip("uid 65534 cannot run this Python")
    with _world_readable_dir() as base:
        project = Project(base / "proj", backend)
        os.chmod(project.root, 0o755)
        project.app.enqueue(_job())
        project.close()
        nuvom_dir = project.root / ".nuvom"
        if fault == "read-only":  # readable by everyone, writable by its owner (root) only
            for path in [nuvom_dir, *nuvom_dir.rglob("*")]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
        out = subprocess.run([sys.executable, "-c", _ENQUEUE_AS_OTHER, str(project.root), backend],
                             capture_output=True, text=True, user=65534, timeout=120, cwd=base)
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout)
        assert result["ok"] is False and result["type"] == "StoreAccessError", result
        assert str(nuvom_dir) in result["message"] and "\n" not in result["message"], result
        assert "uid 0" in result["message"] and "uid 65534" in result["message"], result
        stats = _cli(project, "stats", user=65534)
        assert stats.returncode == 1 and _one_line(stats.stderr), stats.stderr[-2000:]
        worker = _cli(project, "runworker", "--burst", "--no-manifest", user=65534)
        assert worker.returncode == 1 and _one_line(worker.stderr), worker.stderr[-2000:]
        describe({"property": "store-not-writable", "backend": backend, "fault": fault,
                  "message": result["message"][:100]})


@contextlib.contextmanager
def _small_tmpfs(size: str) -> Iterator[Path | None]:
    """A tmpfs of ``size`` (None when this process may not mount)."""
    where = Path(tempfile.mkdtemp(prefix="nuvom-tmpfs-"))
    mounted = False
    if IS_ROOT and sys.platform.startswith("linux"):
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                                 capture_output=True).returncode == 0
    try:
        yield where if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to mount a small tmpfs")
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_full_disk_gives_one_error_and_the_store_recovers(backend: str) -> None:
    with _small_tmpfs("8m") as mount:
        if mount is None:
            # RLIMIT_FSIZE is no substitute: it gives EFBIG ("disk I/O error" in SQLite), not ENOSPC
            pytest.skip("needs root on Linux to mount a small tmpfs")
        mode = "tmpfs"
        out = subprocess.run([sys.executable, str(HERE / "rel_diskfull.py"), backend, str(mount), mode],
                             capture_output=True, text=True, timeout=300, cwd=mount)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    describe({"property": "disk-full", "backend": backend, "mode": mode, **{k: v for k, v in result.items()
                                                                           if k != "first_error"}})
    assert result["errors"] == ["StoreFullError"], result
    assert "no space left" in result["first_error"], result
    assert result["acked"] > 0 and result["missing"] == 0 and result["drained"] == result["acked"], result
    if backend == "sqlite" and mode == "tmpfs":
        assert result["drained_while_full"] > 0, "the SQLite store stayed stuck until space was freed elsewhere"
        # its purge may need more room than is left: then it fails as one clean StoreFullError
        assert result["full_drain_error"] in ("", "StoreFullError"), result
    assert result["after"] == 20 and result["queued_after"] == 20, result


def test_store_errors_are_oserrors_too() -> None:
    """Code that caught ``OSError`` around a backend call keeps working."""
    assert issubclass(StoreError, OSError) and issubclass(StoreError, NuvomError)
