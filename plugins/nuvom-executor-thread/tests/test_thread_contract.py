from __future__ import annotations

from collections.abc import Iterator

import pytest
from nuvom_executor_thread import ThreadExecutor

from nuvom_kernel.testing import ExecutorContract


class TestThreadExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Iterator[ThreadExecutor]:
        ex = ThreadExecutor()
        yield ex
        ex.shutdown(wait=False)
