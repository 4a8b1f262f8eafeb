"""The kernel's conformance suites against the Redis backend, on a real server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nuvom_backend_redis import RedisBackend

from nuvom_kernel.testing import QueueBackendContract, ResultBackendContract


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
