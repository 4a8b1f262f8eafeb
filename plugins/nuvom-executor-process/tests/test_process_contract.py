"""The kernel's executor contract, run against the process executor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nuvom_executor_process import ProcessExecutor

from nuvom_kernel.testing import ExecutorContract


class TestProcessExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Iterator[ProcessExecutor]:
        ex = ProcessExecutor()
        yield ex
        ex.shutdown(wait=False)
