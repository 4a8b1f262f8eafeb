"""Conformance suites for plugin authors (see docs/plugins.md)."""

from __future__ import annotations

from nuvom_kernel.testing import (
    DiscovererContract,
    ExecutorContract,
    QueueBackendContract,
    ResultBackendContract,
    ScheduleStoreContract,
    finished_job,
    make_job,
    make_schedule,
    wait_for,
)

__all__ = [
    "DiscovererContract",
    "ExecutorContract",
    "QueueBackendContract",
    "ResultBackendContract",
    "ScheduleStoreContract",
    "finished_job",
    "make_job",
    "make_schedule",
    "wait_for",
]
