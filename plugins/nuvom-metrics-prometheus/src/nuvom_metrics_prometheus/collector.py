"""What one scrape reports: the job-event files merged, and gauges read from the store.

The gauges come from the public storage roles only, in three queries
whatever the number of jobs, queues or workers' history: ``app.jobs.counts()``
(depth by queue and state), ``app.jobs.oldest_queued_at()`` and
``app.workers.list_workers()``; a fourth, ``app.schedules.list_schedules()``,
when the store keeps schedules (a few rows: every schedule).  Nothing is kept in memory between scrapes,
so a restarted exporter reports the same values.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from nuvom_kernel.models import JobState
from nuvom_kernel.schedules import ScheduleState
from nuvom_metrics_prometheus.recorder import read_families

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom

log = logging.getLogger("nuvom.metrics")

#: A worker is up when it says it runs (or is finishing its jobs) and its last
#: heartbeat is at most this many leases old (it registers every third of a lease).
STALE_AFTER_LEASES = 1.0


class NuvomCollector(Collector):
    """Metrics of the project ``app`` serves; ``directory`` holds the job-event files."""

    def __init__(self, app: Nuvom, directory: str | os.PathLike[str]) -> None:
        self.app = app
        self.directory = Path(directory)

    def collect(self) -> Iterator[Metric]:
        yield from read_families(self.directory)
        yield from self.store_gauges()

    def store_gauges(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("nuvom_store_up", "1 if the last scrape could read the job store and "
                                                 "worker registry, else 0 (the error is logged).")
        try:
            gauges = list(self._read_store())
        except Exception as exc:  # a scrape never raises: Prometheus sees the store is unreachable
            log.warning("metrics: could not read the store: %s", exc, extra={"event": "metrics.store_error"})
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from gauges

    def _read_store(self) -> Iterator[Metric]:
        jobs = self.app.jobs
        counts = jobs.counts()
        oldest = jobs.oldest_queued_at()
        workers = self.app.workers.list_workers()
        at = time.time()

        depth = GaugeMetricFamily("nuvom_jobs", "Jobs in the store by queue and state.", labels=["queue", "state"])
        for queue in sorted(counts):
            for state in JobState:
                depth.add_metric([queue, state.value], float(counts[queue].get(state.value, 0)))
        yield depth

        age = GaugeMetricFamily("nuvom_oldest_queued_job_age_seconds",
                                "How long the longest-waiting queued job has been due (0 when none is queued).")
        age.add_metric([], max(0.0, at - oldest) if oldest is not None else 0.0)
        yield age

        fresh_after = at - STALE_AFTER_LEASES * self.app.settings.lease_secs
        live = [w for w in workers if w.state != "stopped" and w.heartbeat_at >= fresh_after]
        running = sum(by_state.get(JobState.RUNNING.value, 0) for by_state in counts.values())
        up = GaugeMetricFamily("nuvom_workers_up", "Workers whose heartbeat is at most one lease old.")
        up.add_metric([], float(len(live)))
        slots = GaugeMetricFamily("nuvom_worker_slots", "Job slots (concurrency) of the workers that are up.")
        slots.add_metric([], float(sum(w.concurrency for w in live)))
        busy = GaugeMetricFamily("nuvom_worker_slots_busy", "Attempts running now (jobs in state running).")
        busy.add_metric([], float(running))
        yield from (up, slots, busy)
        if self.app.provides("schedules"):
            yield from self._schedules()

    def _schedules(self) -> Iterator[Metric]:
        schedules = self.app.schedules.list_schedules()
        by_state = GaugeMetricFamily("nuvom_schedules", "Stored schedules by state.", labels=["state"])
        for state in ScheduleState:
            by_state.add_metric([state.value], float(sum(1 for s in schedules if s.state == state)))
        yield by_state
        due = GaugeMetricFamily("nuvom_schedule_next_fire_timestamp_seconds",
                                "When each active schedule fires next (POSIX time); far in the past means "
                                "no scheduler is firing it.", labels=["schedule", "task"])
        for schedule in schedules:
            if schedule.state == ScheduleState.ACTIVE and schedule.next_fire_at is not None:
                due.add_metric([schedule.id, schedule.task], schedule.next_fire_at)
        yield due


def make_registry(app: Nuvom, directory: str | os.PathLike[str]) -> CollectorRegistry:
    """A registry with only Nuvom's metrics (no process or platform collectors:
    those describe the exporter, and each worker process is not one target)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NuvomCollector(app, directory))
    return registry
