"""The kernel's conformance suites, run against the file backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nuvom_backend_file import FileBackend

from nuvom_kernel.testing import QueueBackendContract, ResultBackendContract


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
