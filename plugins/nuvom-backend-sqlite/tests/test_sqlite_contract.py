"""The kernel's conformance suites against the SQLite backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nuvom_backend_sqlite import SqliteBackend

from nuvom_kernel.testing import QueueBackendContract, ResultBackendContract, ScheduleStoreContract


class TestSqliteQueueContract(QueueBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        b = SqliteBackend(tmp_path / "q.db")
        yield b
        b.close()

    @pytest.fixture
    def backend_factory(self, backend: SqliteBackend, tmp_path: Path) -> Iterator[Callable[[], SqliteBackend]]:
        opened: list[SqliteBackend] = []

        def make() -> SqliteBackend:
            opened.append(SqliteBackend(tmp_path / "q.db"))
            return opened[-1]

        yield make
        for b in opened:
            b.close()


class TestSqliteQueueContractFallback(TestSqliteQueueContract):
    """The same rules on the claim path for SQLite older than 3.35."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        b = SqliteBackend(tmp_path / "q.db", use_returning=False)
        yield b
        b.close()


class TestSqliteResultContract(ResultBackendContract):
    @pytest.fixture
    def result_backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        b = SqliteBackend(tmp_path / "r.db")
        yield b
        b.close()


class TestSqliteSchedules(ScheduleStoreContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        b = SqliteBackend(tmp_path / "s.db")
        yield b
        b.close()

    @pytest.fixture
    def backend_factory(self, backend: SqliteBackend, tmp_path: Path) -> Iterator[Callable[[], SqliteBackend]]:
        opened: list[SqliteBackend] = []

        def make() -> SqliteBackend:
            opened.append(SqliteBackend(tmp_path / "s.db"))
            return opened[-1]

        yield make
        for b in opened:
            b.close()
