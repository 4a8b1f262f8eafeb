"""Counts job events and logs each one (a lifecycle plugin's state).

Observer hooks run in the producer (``job_enqueued``) and in workers (the
rest); they must be quick and must not raise: Nuvom logs an exception and
carries on, it never changes a job's outcome.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from nuvom_kernel.models import Job

log = logging.getLogger("nuvom.plugins.{{ cookiecutter.component_name }}")


class JobCounter:
    """Thread-safe counts of job events (``enqueued``, ``started``, ``succeeded`` ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, event: str, job: Job, note: str = "") -> None:
        with self._lock:
            self._counts[event] += 1
        log.info("job %s (%s) %s %s", job.id, job.task, event, note)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


COUNTER = JobCounter()
