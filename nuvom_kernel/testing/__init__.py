"""Conformance suites every backend, executor, discoverer and serializer plugin runs (ours and
third-party).

``from nuvom_kernel.testing import QueueBackendContract`` (also available as
``nuvom.testing``), subclass it in your plugin's tests with a fixture, and
pytest runs every rule against your component.  See docs/plugins.md.
"""

from __future__ import annotations

from nuvom_kernel.testing.discoverer_contract import DiscovererContract
from nuvom_kernel.testing.executor_contract import ExecutorContract
from nuvom_kernel.testing.queue_contract import QueueBackendContract, make_job, wait_for
from nuvom_kernel.testing.result_contract import ResultBackendContract, finished_job
from nuvom_kernel.testing.schedule_contract import ScheduleStoreContract, make_schedule
from nuvom_kernel.testing.serializer_contract import SerializerContract

__all__ = [
    "DiscovererContract",
    "ExecutorContract",
    "QueueBackendContract",
    "ResultBackendContract",
    "SerializerContract",
    "ScheduleStoreContract",
    "finished_job",
    "make_job",
    "make_schedule",
    "wait_for",
]
