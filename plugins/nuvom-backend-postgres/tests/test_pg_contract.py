"""The kernel's conformance suites against the PostgreSQL backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nuvom_backend_postgres import PostgresBackend

from nuvom_kernel.testing import QueueBackendContract, ResultBackendContract, ScheduleStoreContract


class TestPostgresQueueContract(QueueBackendContract):
    @pytest.fixture
    def backend_factory(self, make_backend: Callable[..., PostgresBackend]) -> Callable[[], PostgresBackend]:
        return make_backend  # another object, another pool: as another process would


class TestPostgresPollOnlyContract(QueueBackendContract):
    """The same rules with wake-ups by polling only (PgBouncer transaction mode)."""

    @pytest.fixture
    def backend(self, make_backend: Callable[..., PostgresBackend]) -> PostgresBackend:
        return make_backend(wakeups="poll")

    @pytest.fixture
    def backend_factory(self, make_backend: Callable[..., PostgresBackend]) -> Callable[[], PostgresBackend]:
        return lambda: make_backend(wakeups="poll")

    def test_subscribers_are_woken_by_enqueue(self, backend: PostgresBackend,  # type: ignore[override]
                                              backend_factory: Callable[[], PostgresBackend]) -> None:
        pytest.skip("poll-only mode has no cross-process wake-up by design; the worker's poll finds the job")


class TestPostgresResultContract(ResultBackendContract):
    @pytest.fixture
    def result_backend(self, backend: PostgresBackend) -> PostgresBackend:
        return backend


class TestPostgresSchedules(ScheduleStoreContract):
    """A fire is one transaction holding the schedule's row lock."""

    @pytest.fixture
    def backend_factory(self, make_backend: Callable[..., PostgresBackend]) -> Callable[[], PostgresBackend]:
        return make_backend
