"""The kernel's conformance suites, run against the file backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nuvom_backend_file import FileBackend

from nuvom_kernel.testing import (
    QueueBackendContract,
    ResultBackendContract,
    ScheduleStoreContract,
    make_schedule,
)


class TestFileQueueContract(QueueBackendContract):
    @pytest.fixture
    def others(self) -> Iterator[list[FileBackend]]:
        opened: list[FileBackend] = []
        yield opened
        for backend in opened:
            backend.close()

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[FileBackend]:
        b = FileBackend(tmp_path / "jobs")
        yield b
        b.close()

    @pytest.fixture
    def backend_factory(self, backend: FileBackend, tmp_path: Path, others: list[FileBackend]) -> Callable[[], FileBackend]:
        """Another instance on the same directory: what a second process sees."""

        def make() -> FileBackend:
            b = FileBackend(tmp_path / "jobs")
            others.append(b)
            return b

        return make


class TestFileResultContract(ResultBackendContract):
    @pytest.fixture
    def result_backend(self, tmp_path: Path) -> Iterator[FileBackend]:
        b = FileBackend(tmp_path / "results")
        yield b
        b.close()


class TestFileSchedules(ScheduleStoreContract):
    @pytest.fixture
    def others(self) -> Iterator[list[FileBackend]]:
        opened: list[FileBackend] = []
        yield opened
        for backend in opened:
            backend.close()

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[FileBackend]:
        b = FileBackend(tmp_path / "jobs", fsync=False)
        yield b
        b.close()

    @pytest.fixture
    def backend_factory(self, backend: FileBackend, tmp_path: Path, others: list[FileBackend]) -> Callable[[], FileBackend]:
        def make() -> FileBackend:
            b = FileBackend(tmp_path / "jobs", fsync=False)
            others.append(b)
            return b

        return make

    def test_a_killed_fire_is_repeated_once_its_lock_is_stale(self, tmp_path: Path) -> None:
        """A scheduler died holding the lock after enqueueing: the next fire adds no second job."""
        from nuvom_kernel.testing.schedule_contract import fire_job

        b = FileBackend(tmp_path / "stale", fsync=False, lock_stale_secs=0.2, lock_timeout_secs=30)
        try:
            s = b.add_schedule(make_schedule())
            job = fire_job(s, s.next_fire_at)
            b.enqueue(job.model_copy(deep=True))  # what the dead scheduler did before dying
            assert b._schedule_locks.try_acquire(s.id)  # and the lock it left behind
            assert b.fire_schedule(s.id, s.next_fire_at, [job], s.next_fire_at + 60)
            assert len([j for j in b.query_jobs(limit=10).jobs if j.id == job.id]) == 1
            assert b.get_schedule(s.id).fire_count == 1
        finally:
            b.close()
