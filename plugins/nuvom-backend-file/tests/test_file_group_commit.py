"""Group commit: a batch of enqueues is made durable with one data sync and one
sync per directory, a batch of finishes with one data sync, not one fsync per
job (issue 9, point 8)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from nuvom_backend_file import FileBackend
from nuvom_backend_file import backend as backend_module
from nuvom_backend_file import records as records_module

from nuvom_kernel.contracts import Completion
from nuvom_kernel.errors import PayloadError
from nuvom_kernel.models import Job, JobState, Outcome


class Syncs:
    """Records the sync calls the backend makes (and still performs them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.data: list[list[Path]] = []
        self.dirs: list[list[Path]] = []
        self.inline = 0
        real_data, real_dirs, real_stage = records_module.sync_data, records_module.sync_dirs, records_module.stage_file

        def data(root: Path, paths: Sequence[str | Path], pool: Any = None) -> None:
            listed = [Path(p) for p in paths]
            for path in listed:  # every file of the batch is complete when it is synced
                assert path.stat().st_size > 0
            self.data.append(listed)
            real_data(root, paths, pool)

        def dirs(directories: Any) -> None:
            listed = list(directories)
            self.dirs.append(listed)
            real_dirs(listed)

        def stage(tmp_dir: Path, payload: bytes, *, fsync: bool) -> str:
            self.inline += fsync
            return real_stage(tmp_dir, payload, fsync=fsync)

        monkeypatch.setattr(backend_module, "sync_data", data)
        monkeypatch.setattr(backend_module, "sync_dirs", dirs)
        monkeypatch.setattr(backend_module, "stage_file", stage)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[FileBackend]:
    b = FileBackend(tmp_path / "jobs", fsync=True, doorbell=False)
    yield b
    b.close()


def _claimed(backend: FileBackend, n: int) -> list[Job]:
    backend.enqueue_many([Job(task="t", args=[i]) for i in range(n)])
    jobs = backend.claim(["default"], n, 30.0, "w1", start_now=n)
    assert len(jobs) == n
    return jobs


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_a_batch_of_enqueues_is_one_group_commit(
    backend: FileBackend, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    if not syncfs:
        monkeypatch.setattr(records_module, "_SYNCFS", None)
    elif not records_module.has_syncfs():
        pytest.skip("syncfs(2) is Linux only")
    syncs = Syncs(monkeypatch)
    stored = backend.enqueue_many([Job(task="t", args=[i]) for i in range(50)])
    ready = backend.layout.ready / "default"
    assert len(syncs.data) == 1 and len(syncs.data[0]) == 50 and syncs.inline == 0
    if syncfs:  # renamed first, then one syncfs covers their data and their names
        assert {p.parent for p in syncs.data[0]} == {ready} and syncs.dirs == []
    else:  # data first (from a pool), then the renames, then the directory
        assert {p.parent for p in syncs.data[0]} == {backend.layout.tmp} and syncs.dirs == [[ready]]
    assert len(stored) == 50 and len(list(ready.iterdir())) == 50
    assert list(backend.layout.tmp.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX renames an open file; Windows fsyncs before the rename")
def test_a_single_enqueue_is_renamed_then_fsynced_then_its_directory(
    backend: FileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src: Any, dst: Any) -> None:
        events.append(("replace", Path(dst).parent.name))
        real_replace(src, dst)

    def fsync(fd: int) -> None:
        events.append(("fsync", "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    backend.enqueue(Job(task="t"))
    assert events == [("replace", "default"), ("fsync", "file"), ("fsync", "dir")]
    assert list(backend.layout.tmp.iterdir()) == []


def test_a_batch_of_finishes_is_one_data_sync(
    backend: FileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _claimed(backend, 20)
    syncs = Syncs(monkeypatch)
    done = [Completion(j.id, j.token or 0, Outcome(kind="succeeded", result=i)) for i, j in enumerate(jobs)]
    reply = backend.exchange(done, ["default"], 0, 30.0, "w1")
    assert reply.accepted == [True] * 20
    assert [len(paths) for paths in syncs.data] == [20] and syncs.inline == 0
    assert syncs.dirs == []  # the renames are not synced (an undone finish runs again)
    for i, job in enumerate(jobs):
        stored = backend.get(job.id)
        assert stored is not None and stored.state == JobState.SUCCEEDED and stored.result == i
    assert list(backend.layout.tmp.iterdir()) == [] and list(backend.layout.locks.iterdir()) == []


def test_without_fsync_nothing_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FileBackend(tmp_path / "jobs", fsync=False, doorbell=False)
    try:
        syncs = Syncs(monkeypatch)
        jobs = _claimed(backend, 3)
        backend.exchange([Completion(j.id, j.token or 0, Outcome(kind="succeeded")) for j in jobs], [], 0, 30.0, "w1")
        assert syncs.data == [] and syncs.dirs == [] and syncs.inline == 0
    finally:
        backend.close()


def test_the_same_job_twice_in_one_batch_is_finished_once(backend: FileBackend) -> None:
    (job,) = _claimed(backend, 1)
    token = job.token or 0
    reply = backend.exchange(
        [Completion(job.id, token, Outcome(kind="succeeded", result=1)),
         Completion(job.id, token, Outcome(kind="succeeded", result=2))],
        [], 0, 30.0, "w1",
    )
    assert reply.accepted == [True, False]
    stored = backend.get(job.id)
    assert stored is not None and stored.result == 1


def test_one_bad_outcome_does_not_stop_the_others(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "jobs", fsync=True, doorbell=False, max_record_bytes=20_000)
    try:
        jobs = _claimed(backend, 3)
        outcomes = [Outcome(kind="succeeded", result=1), Outcome(kind="succeeded", result="x" * 50_000),
                    Outcome(kind="succeeded", result=3)]
        with pytest.raises(PayloadError, match="record limit"):
            backend.exchange([Completion(j.id, j.token or 0, o) for j, o in zip(jobs, outcomes)], [], 0, 30.0, "w1")
        states = [backend.get(j.id).state for j in jobs]  # type: ignore[union-attr]
        assert states == [JobState.SUCCEEDED, JobState.RUNNING, JobState.SUCCEEDED]
        assert list(backend.layout.tmp.iterdir()) == [] and list(backend.layout.locks.iterdir()) == []
    finally:
        backend.close()


def test_a_failed_sync_acknowledges_nothing_and_leaves_the_jobs_running(
    backend: FileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _claimed(backend, 4)

    def broken(root: Path, paths: Sequence[Path], pool: Any = None) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(backend_module, "sync_data", broken)
    with pytest.raises(OSError, match="Input/output"):
        backend.exchange([Completion(j.id, j.token or 0, Outcome(kind="succeeded")) for j in jobs], [], 0, 30.0, "w1")
    assert all(backend.get(j.id).state == JobState.RUNNING for j in jobs)  # type: ignore[union-attr]
    assert list(backend.layout.tmp.iterdir()) == [] and list(backend.layout.locks.iterdir()) == []
    with pytest.raises(OSError, match="Input/output"):
        backend.enqueue_many([Job(task="t"), Job(task="t")])
    # with syncfs the jobs were renamed before the failed sync: published but not
    # acknowledged (a raised enqueue may have published jobs); either way no temp
    # file is left and every id marker belongs to a stored job
    assert list(backend.layout.tmp.iterdir()) == []
    visible = len(list((backend.layout.ready / "default").iterdir()))
    assert visible == (2 if records_module.has_syncfs() else 0)
    assert len(list(backend.layout.ids.iterdir())) == 4 + visible


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_sync_data_really_syncs_each_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool) -> None:
    if not syncfs:
        monkeypatch.setattr(records_module, "_SYNCFS", None)
    elif records_module._SYNCFS is None:
        pytest.skip("syncfs(2) is Linux only")
    called: list[Path] = []
    real = records_module.fsync_path
    monkeypatch.setattr(records_module, "fsync_path", lambda p: (called.append(Path(p)), real(p)))
    paths = [records_module.stage_file(tmp_path, b"x" * 10, fsync=False) for _ in range(5)]
    with backend_module.ThreadPoolExecutor(2) as pool:
        records_module.sync_data(tmp_path, paths, pool)
    assert sorted(called) == ([] if syncfs else sorted(Path(p) for p in paths))
    records_module.sync_dirs([tmp_path])
