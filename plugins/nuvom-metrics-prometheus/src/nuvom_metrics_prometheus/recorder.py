"""Counters and histograms of job events, shared by every process of a project.

Each process that sees job events (producers, workers) adds them to its own
files in the project's ``.nuvom/metrics/`` directory, in prometheus_client's
multiprocess format (``counter_<host>-<pid>.db``, ``histogram_<host>-<pid>.db``:
memory-mapped, so an increment is a write to memory and a killed process loses
nothing).  Whoever serves ``/metrics`` merges every file there
(:func:`read_families`): a counter is the sum over all processes that ever
ran, so it only grows, and a restart does not reset it.

prometheus_client's own multiprocess mode does the same but is switched on
for the whole process by ``PROMETHEUS_MULTIPROC_DIR``; writing the files
here leaves an application's own metrics and settings alone.
"""

from __future__ import annotations

import atexit
import bisect
import glob
import math
import os
import re
import socket
import threading
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from nuvom_support.files import touch_private

#: Where the files live, under the project root.
METRICS_DIR = Path(".nuvom") / "metrics"

#: name: (help, label names) -- the samples are ``<name>_total``
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "nuvom_jobs_enqueued": ("Jobs stored by a producer (nuvom_job_enqueued).", ("task", "queue")),
    "nuvom_jobs_started": ("Attempts a worker started.", ("task", "queue")),
    "nuvom_jobs_finished": ("Attempts whose outcome the backend accepted, by outcome: succeeded, failed, "
                            "retried, cancelled, dead.", ("task", "queue", "outcome")),
    "nuvom_lease_expiries": ("Expired leases workers' sweepers returned to the queue (or dead-lettered).", ()),
    "nuvom_schedule_fires": ("Jobs enqueued by schedule fires (one per occurrence fired).", ("schedule", "task")),
    "nuvom_schedule_skips": ("Schedule occurrences that enqueued no job of their own, by reason: missed "
                             "(later than the grace period) or coalesced (merged into another occurrence's job).",
                             ("schedule", "task", "reason")),
}
#: Seconds, from a fast task to an hour-long one.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
           math.inf)
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "nuvom_job_run_seconds": ("How long an attempt ran, from its start to its outcome.", ("task", "queue")),
    "nuvom_job_queue_wait_seconds": ("How long an attempt waited to start once it was due "
                                     "(created, or its eta passed).", ("task", "queue")),
}
_LE = {bound: floatToGoString(bound) for bound in BUCKETS}
OUTCOMES = ("succeeded", "failed", "retried", "cancelled", "dead")


def process_identity() -> str:
    """Unique among the live processes writing one directory: host and pid
    (containers sharing a volume all run as pid 1 but have their own host names)."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


#: recorders of this process, closed at exit so their mapped files are not left open
_open_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _close_all() -> None:
    for recorder in list(_open_recorders):
        recorder.close()


atexit.register(_close_all)


class Recorder:
    """This process's counters and histograms in one metrics directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()  # MmapedDict is not thread safe
        self._files: dict[str, MmapedDict] = {}
        self._pid: int | None = None
        self._histograms: set[tuple[str, tuple[str, ...]]] = set()  # label sets whose buckets exist
        self._keys: dict[tuple[str, tuple[str, ...]], str] = {}
        _open_recorders.add(self)

    def _file(self, kind: str) -> MmapedDict:
        if self._pid != os.getpid():  # a forked child must not write its parent's files
            self._files, self._pid, self._histograms = {}, os.getpid(), set()
        file = self._files.get(kind)
        if file is None:
            path = touch_private(self.directory / f"{kind}_{process_identity()}.db")  # 0600 in a 0700 directory
            # a later process with the same host and pid continues the old file's
            # values, so counters still only grow
            file = self._files[kind] = MmapedDict(str(path))
        return file

    def _key(self, name: str, sample: str, names: tuple[str, ...], values: tuple[str, ...], help_text: str) -> str:
        key = self._keys.get((sample, values))
        if key is None:  # json.dumps once per label set, not per event
            key = self._keys[(sample, values)] = mmap_key(name, sample, list(names), list(values), help_text)
        return key

    def _add(self, file: MmapedDict, key: str, amount: float) -> None:
        value, _ = file.read_value(key)
        file.write_value(key, value + amount, 0.0)  # timestamps matter only to "mostrecent" gauges

    def inc(self, name: str, labels: Mapping[str, str], amount: float = 1.0) -> None:
        help_text, names = COUNTERS[name]
        key = self._key(name, name + "_total", names, tuple(labels[n] for n in names), help_text)
        with self._lock:
            self._add(self._file("counter"), key, amount)

    def observe(self, name: str, labels: Mapping[str, str], seconds: float) -> None:
        help_text, names = HISTOGRAMS[name]
        values = tuple(labels[n] for n in names)
        seconds = max(0.0, seconds)
        bucket_names = (*names, "le")
        with self._lock:
            file = self._file("histogram")
            if (name, values) not in self._histograms:  # every bucket, +Inf included, from the start
                for le in BUCKETS:
                    file.read_value(self._key(name, name + "_bucket", bucket_names, (*values, _LE[le]), help_text))
                self._histograms.add((name, values))
            bound = BUCKETS[bisect.bisect_left(BUCKETS, seconds)]  # each bucket its own count; merged cumulatively
            self._add(file, self._key(name, name + "_bucket", bucket_names, (*values, _LE[bound]), help_text), 1.0)
            self._add(file, self._key(name, name + "_sum", names, values, help_text), seconds)

    def close(self) -> None:
        with self._lock:
            for file in self._files.values():
                file.close()
            self._files.clear()


def read_families(directory: str | os.PathLike[str]) -> Iterable[Metric]:
    """Every process's counters and histograms in ``directory``, merged."""
    files = sorted(glob.glob(os.path.join(os.fspath(directory), "*.db")))
    return MultiProcessCollector.merge(files, accumulate=True) if files else []
