from __future__ import annotations

import pytest
from nuvom_backend_memory import MemoryBackend

from nuvom_kernel.testing import QueueBackendContract, ResultBackendContract, ScheduleStoreContract


class TestMemoryQueue(QueueBackendContract):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()


class TestMemoryResults(ResultBackendContract):
    @pytest.fixture
    def result_backend(self) -> MemoryBackend:
        return MemoryBackend()


class TestMemorySchedules(ScheduleStoreContract):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()
