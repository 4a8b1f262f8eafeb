"""The kernel's contract suite, run against this plugin's component."""

from __future__ import annotations

from collections.abc import Iterator
{%- if cookiecutter.kind == "result-backend" %}
from pathlib import Path
{%- endif %}

import pytest
{%- if cookiecutter.kind == "queue-backend" %}
from nuvom_kernel.testing import QueueBackendContract, ResultBackendContract

from {{ cookiecutter.package_name }}.queue import DictQueueBackend


class TestQueueContract(QueueBackendContract):
    @pytest.fixture
    def backend(self) -> Iterator[DictQueueBackend]:
        backend = DictQueueBackend()
        yield backend
        backend.close()


class TestResultContract(ResultBackendContract):
    @pytest.fixture
    def result_backend(self) -> Iterator[DictQueueBackend]:
        backend = DictQueueBackend()
        yield backend
        backend.close()
{%- elif cookiecutter.kind == "result-backend" %}
from nuvom_kernel.testing import ResultBackendContract

from {{ cookiecutter.package_name }}.results import JsonFileResultBackend


class TestResultContract(ResultBackendContract):
    @pytest.fixture
    def result_backend(self, tmp_path: Path) -> Iterator[JsonFileResultBackend]:
        backend = JsonFileResultBackend(tmp_path / "results")
        yield backend
        backend.close()
{%- elif cookiecutter.kind == "executor" %}
from nuvom_kernel.testing import ExecutorContract

from {{ cookiecutter.package_name }}.executor import SimpleThreadExecutor


class TestExecutorContract(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Iterator[SimpleThreadExecutor]:
        executor = SimpleThreadExecutor()
        yield executor
        executor.shutdown(wait=False)
{%- elif cookiecutter.kind == "discoverer" %}
from nuvom_kernel.testing import DiscovererContract

from {{ cookiecutter.package_name }}.discoverer import AstTaskDiscoverer


class TestDiscovererContract(DiscovererContract):
    @pytest.fixture
    def discoverer(self) -> Iterator[AstTaskDiscoverer]:
        yield AstTaskDiscoverer()
{%- endif %}
