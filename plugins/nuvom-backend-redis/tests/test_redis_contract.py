"""The kernel's conformance suites against the Redis backend, on a real server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nuvom_backend_redis import RedisBackend

from nuvom_kernel.testing import QueueBackendContract, ResultBackendContract, ScheduleStoreContract


class TestRedisQueueContract(QueueBackendContract):
    @pytest.fixture
    def backend(self, open_backend: Callable[..., RedisBackend]) -> RedisBackend:
        return open_backend()

    @pytest.fixture
    def backend_factory(self, backend: RedisBackend, open_backend: Callable[..., RedisBackend]) -> Callable[[], RedisBackend]:
        return open_backend  # another client (own connections) on the same namespace


class TestRedisResultContract(ResultBackendContract):
    @pytest.fixture
    def result_backend(self, open_backend: Callable[..., RedisBackend]) -> RedisBackend:
        return open_backend()


class TestRedisClusterQueueContract(QueueBackendContract):
    """The same rules on a Redis Cluster of three primaries: every key of the
    namespace shares its hash tag, so the scripts run on the slot's node."""

    @pytest.fixture
    def backend(self, open_backend: Callable[..., RedisBackend], redis_cluster: str) -> RedisBackend:
        return open_backend(redis_cluster, cluster=True)

    @pytest.fixture
    def backend_factory(self, backend: RedisBackend, open_backend: Callable[..., RedisBackend],
                        redis_cluster: str) -> Callable[[], RedisBackend]:
        return lambda: open_backend(redis_cluster, cluster=True)


class TestRedisClusterResultContract(ResultBackendContract):
    @pytest.fixture
    def result_backend(self, open_backend: Callable[..., RedisBackend], redis_cluster: str) -> RedisBackend:
        return open_backend(redis_cluster, cluster=True)


class TestRedisSchedules(ScheduleStoreContract):
    """Every fire is one script: racing clients fire each occurrence once."""

    @pytest.fixture
    def backend(self, open_backend: Callable[..., RedisBackend]) -> RedisBackend:
        return open_backend()

    @pytest.fixture
    def backend_factory(self, backend: RedisBackend, open_backend: Callable[..., RedisBackend]) -> Callable[[], RedisBackend]:
        return open_backend


class TestRedisClusterSchedules(ScheduleStoreContract):
    @pytest.fixture
    def backend(self, open_backend: Callable[..., RedisBackend], redis_cluster: str) -> RedisBackend:
        return open_backend(redis_cluster, cluster=True)

    @pytest.fixture
    def backend_factory(self, backend: RedisBackend, open_backend: Callable[..., RedisBackend],
                        redis_cluster: str) -> Callable[[], RedisBackend]:
        return lambda: open_backend(redis_cluster, cluster=True)
