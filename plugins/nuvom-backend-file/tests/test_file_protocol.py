"""The on-disk protocol: layout, permissions, crash repair, locks, Windows
sharing violations, ordering, and the plugin's factory."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nuvom_backend_file import FileBackend, plugin
from nuvom_backend_file import records as records_module
from nuvom_backend_file.layout import SUBDIRS, id_from_name, ready_name
from nuvom_backend_file.locks import LockTable, LockTimeoutError
from nuvom_backend_file.records import JobRecord, encode

from nuvom_kernel.errors import ConfigError
from nuvom_kernel.models import Job, JobState, Outcome, now
from nuvom_kernel.settings import NuvomSettings


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[FileBackend]:
    b = FileBackend(tmp_path / "jobs", fsync=False)
    yield b
    b.close()


def _write_raw(path: Path, job: Job, fence: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(JobRecord(fence=fence, job=job), 1 << 20))


# -- layout and permissions ---------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_directories_0700_and_files_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        b = FileBackend(tmp_path / "jobs", doorbell=False)
        job = b.enqueue(Job(task="t", queue="q1"))
        [claimed] = b.claim(["q1"], 1, 30.0, "w")
        b.finish(claimed.id, claimed.token or 0, Outcome(kind="succeeded", result=1))
        b.enqueue(Job(task="t", queue="q1", unique_key="k"))
        b.close()
    finally:
        os.umask(old)
    root = tmp_path / "jobs"
    for directory in [root, *(root / s for s in SUBDIRS), root / "ready" / "q1"]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == f"{job.id}.job" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_names_sort_by_priority_then_ready_time() -> None:
    jobs = [
        Job(task="t", priority=-5, created_at=1.0),
        Job(task="t", priority=0, created_at=3.0),
        Job(task="t", priority=0, created_at=2.0, eta=2.5),
        Job(task="t", priority=10**12, created_at=9.0),
        Job(task="t", priority=7, created_at=5.0),
    ]
    ordered = sorted(jobs, key=ready_name)
    assert [j.priority for j in ordered] == [10**12, 7, 0, 0, -5]
    assert ordered[2].eta == 2.5
    assert all(id_from_name(ready_name(j)) == j.id for j in jobs)
    assert all(len(ready_name(j)) <= 15 + 1 + 64 + 4 for j in jobs)


# -- crash repair -------------------------------------------------------------------


def test_claim_interrupted_before_rewrite_is_returned_by_sweep(tmp_path: Path) -> None:
    """A claimer died after renaming the file into run/ but before rewriting it.
    Claims take no lock, so the sweep waits ``lock_stale_secs`` before deciding."""
    backend = FileBackend(tmp_path / "jobs", lock_stale_secs=0.2, doorbell=False)
    job = Job(task="t")
    job.record(JobState.QUEUED)
    _write_raw(backend.layout.run_path(job.id), job, fence=3)
    assert backend.sweep() == 0  # could still be a claim in flight
    deadline = time.monotonic() + 10
    while backend.sweep() == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [claimed] = backend.claim(["default"], 5, 30.0, "w")
    assert claimed.id == job.id and claimed.attempts == 0 and claimed.token == 4
    backend.close()


def test_cancel_waits_for_a_claim_in_flight_then_flags_it(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "jobs", lock_stale_secs=5.0, doorbell=False)
    job = backend.enqueue(Job(task="t"))
    ready = backend.layout.ready_path(job)
    run = backend.layout.run_path(job.id)
    os.replace(ready, run)  # a claimer in another process has just renamed it ...
    record = records_module.read_record(run, 1 << 20)
    from nuvom_support.backend_base import claim_update

    def finish_the_claim() -> None:  # ... and rewrites it a moment later
        record.fence += 1
        claim_update(record.job, record.fence, 30.0, "other", start=True)
        records_module.write_file(backend.layout.tmp, run, encode(record, 1 << 20), fsync=False)

    timer = threading.Timer(0.05, finish_the_claim)
    timer.start()
    cancelled = backend.cancel(job.id)
    timer.join()
    assert cancelled is not None and cancelled.state == JobState.RUNNING and cancelled.cancel_requested
    assert run.exists() and not backend.layout.done_path(job.id).exists()
    backend.close()


def test_finish_interrupted_before_move_lands_in_done(backend: FileBackend) -> None:
    backend.enqueue(Job(task="t"))
    [claimed] = backend.claim(["default"], 1, 30.0, "w")
    path = backend.layout.run_path(claimed.id)
    record = records_module.read_record(path, 1 << 20)
    record.job.record(JobState.SUCCEEDED)
    record.job.result = "kept"
    _write_raw(path, record.job, record.fence)
    assert backend.sweep() == 1
    assert backend.layout.done_path(claimed.id).exists() and not path.exists()
    got = backend.get_result(claimed.id)
    assert got is not None and got.result == "kept"


def test_stale_lock_of_a_dead_process_is_broken(backend: FileBackend) -> None:
    job = backend.enqueue(Job(task="t"))
    lock = backend.locks.path(job.id)
    old = time.time() - 3600
    lock.touch()
    os.utime(lock, (old, old))
    backend.sweep()
    assert not lock.exists()
    lock.touch()
    os.utime(lock, (old, old))
    cancelled = backend.cancel(job.id)  # waits for the lock, finds it stale, breaks it
    assert cancelled is not None and cancelled.state == JobState.CANCELLED
    assert not lock.exists()


def test_fresh_lock_times_out_with_a_clear_message(tmp_path: Path) -> None:
    table = LockTable(tmp_path, stale_secs=3600, timeout_secs=0.05)
    assert table.try_acquire("job1")
    with pytest.raises(LockTimeoutError, match="delete it"):
        table.acquire("job1")
    table.release("job1")
    with table.hold("job1"):
        assert table.path("job1").exists()
    assert not table.path("job1").exists()


def test_old_temp_files_are_cleaned(backend: FileBackend) -> None:
    leftover = backend.layout.tmp / "abandoned.tmp"
    leftover.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    fresh = backend.layout.tmp / "inflight.tmp"
    fresh.write_bytes(b"y")
    backend.sweep()
    assert not leftover.exists() and fresh.exists()


def test_sweep_promotes_due_scheduled_jobs_for_every_queue(backend: FileBackend) -> None:
    job = backend.enqueue(Job(task="t", queue="later", eta=now() + 0.05))
    assert backend.get(job.id) is not None
    other = FileBackend(backend.root, doorbell=False)
    try:
        deadline = time.monotonic() + 10
        while not list((backend.layout.ready / "later").glob("*.due")):
            other.sweep()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        got = other.get(job.id)
        assert got is not None and got.state == JobState.SCHEDULED
        assert other.counts() == {"later": {"scheduled": 1}}
        assert [j.id for j in other.claim(["later"], 1, 30.0, "w")] == [job.id]
    finally:
        other.close()


# -- Windows sharing violations -------------------------------------------------------


def test_sharing_violations_are_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FileBackend(tmp_path / "jobs", doorbell=False)
    real_replace = os.replace
    failures = {"left": 3}

    def flaky(src: object, dst: object) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", flaky)
    job = backend.enqueue(Job(task="t"))
    assert failures["left"] == 0
    failures["left"] = 2
    [claimed] = backend.claim(["default"], 1, 30.0, "w")
    failures["left"] = 3
    assert backend.finish(job.id, claimed.token or 0, Outcome(kind="succeeded"))
    got = backend.get(job.id)
    assert got is not None and got.state == JobState.SUCCEEDED
    backend.close()


def test_persistent_permission_error_is_raised_not_hidden(backend: FileBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(src: object, dst: object) -> None:
        raise PermissionError(13, "Access is denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError):
        backend.enqueue(Job(task="t"))
    assert list(backend.layout.tmp.iterdir()) == []  # the temp file was cleaned up


# -- cross-instance views -------------------------------------------------------------


def test_another_instance_sees_and_claims_the_jobs(backend: FileBackend) -> None:
    jobs = backend.enqueue_many([Job(task="t", args=[i]) for i in range(20)])
    other = FileBackend(backend.root, doorbell=False)
    try:
        assert other.get(jobs[7].id) is not None
        got = other.claim(["default"], 50, 30.0, "w2")
        assert sorted(j.id for j in got) == sorted(j.id for j in jobs)
        assert backend.claim(["default"], 50, 30.0, "w1") == []  # stale cache names are skipped
    finally:
        other.close()


def test_unique_key_pointer_survives_purge(backend: FileBackend) -> None:
    first = backend.enqueue(Job(task="t", unique_key="nightly"))
    [claimed] = backend.claim(["default"], 1, 30.0, "w")
    backend.finish(first.id, claimed.token or 0, Outcome(kind="succeeded"))
    assert backend.purge() == 1
    assert list(backend.layout.unique.glob("*.key")) == []
    second = backend.enqueue(Job(task="t", unique_key="nightly"))
    assert second.id != first.id
    assert backend.enqueue(Job(task="t", unique_key="nightly")).id == second.id


def test_purge_keeps_live_jobs(backend: FileBackend) -> None:
    live = [backend.enqueue(Job(task="t")), backend.enqueue(Job(task="t", eta=now() + 3600))]
    running = backend.enqueue(Job(task="t"))
    backend.claim(["default"], 1, 30.0, "w")
    assert backend.purge() == 0
    assert backend.purge(states=[JobState.QUEUED, JobState.RUNNING]) == 0
    assert all(backend.get(j.id) is not None for j in [*live, running])


def test_closed_backend_says_so(tmp_path: Path) -> None:
    b = FileBackend(tmp_path / "jobs", doorbell=False)
    b.close()
    b.close()
    with pytest.raises(Exception, match="closed"):
        b.enqueue(Job(task="t"))


# -- plugin factory -------------------------------------------------------------------


def test_factory_makes_a_new_object_per_call(tmp_path: Path) -> None:
    """The app owns its store: two calls on one directory are two independent objects."""
    settings = NuvomSettings()
    a = plugin.FileOptions(dir=str(tmp_path / "a"))
    first = plugin.make_backend(settings, a)
    second = plugin.make_backend(settings, {"dir": str(tmp_path / "a")})
    try:
        assert first is not second and first.root == second.root == (tmp_path / "a").resolve()
        other = plugin.make_backend(settings, {"dir": str(tmp_path / "b"), "fsync": False})
        assert other.fsync is False
        other.close()
        first.close()
        job = second.enqueue(Job(task="t"))  # closing one leaves the other working
        assert second.get(job.id) is not None
    finally:
        second.close()


def test_relative_dir_resolves_under_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUVOM_PROJECT_ROOT", str(tmp_path))
    b = plugin.make_backend(NuvomSettings(), {})
    try:
        assert b.root == (tmp_path / ".nuvom" / "jobs").resolve()
    finally:
        b.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"fsynk": True}, r"file setting fsynk \(from options\) is unknown; file accepts: dir, fsync"),
     ({"fsync": 3}, "file setting fsync=3 .* expected true or false"),
     ({"lock_stale_secs": -1}, r"lock_stale_secs=-1 .* expected a finite number > 0 and <= 86400")],
)
def test_bad_options_are_named(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plugin.make_backend(NuvomSettings(), {"dir": str(tmp_path), **options})


def test_registers_one_store_named_file_with_every_role() -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []
    plugin.nuvom_register_storage(lambda name, factory, *, roles, description=None: seen.append((name, tuple(roles))))
    assert seen == [("file", ("queue", "jobs", "results", "workers", "schedules"))]
