"""Where each file lives and how names sort.

::

    <root>/tmp/                       every write starts here
    <root>/ready/<queue>/<name>       claimable jobs, in claim order by name
    <root>/sched/<queue>/<eta>-<id>.job   jobs waiting for their eta
    <root>/run/<id>.job               running jobs, and jobs in transition
    <root>/done/<id>.job              finished jobs (the results)
    <root>/locks/<id>.lock            per-job mutation locks (O_EXCL files)
    <root>/unique/<hash>.key          unique-key pointers to the live job
    <root>/quarantine/                corrupt files and their .reason notes
    <root>/workers/<id>.wrk           worker registrations
    <root>/doorbell/                  UDP doorbell ports

A ready name is ``<priority:6><ready_ms:9>-<id>.<kind>``: both numbers in
fixed-width base 36, the priority inverted, so that sorting names gives
higher priority first, then the earliest ready time (eta or created_at),
then the id.  ``kind`` is ``job`` for a queued job and ``due`` for a
scheduled job whose eta has passed (its state stays ``scheduled`` until a
worker claims it, as on every backend).
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from nuvom_backend_file.records import DIR_MODE
from nuvom_kernel.errors import StoreAccessError
from nuvom_kernel.models import LEASED_STATES, Job, JobState, now
from nuvom_kernel.storefaults import store_error
from nuvom_support.files import make_private_dir as kernel_make_private_dir

_DIGITS = string.digits + string.ascii_lowercase
_PRI_WIDTH = 6
_MS_WIDTH = 9
_PRI_SPAN = 36**_PRI_WIDTH
_PRI_MAX = _PRI_SPAN // 2 - 1
_MS_MAX = 36**_MS_WIDTH - 1
READY_SUFFIXES = (".job", ".due")

SUBDIRS = ("tmp", "ready", "sched", "run", "done", "locks", "unique", "quarantine", "workers", "doorbell", "ids")


def _b36(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        out.append(_DIGITS[rem])
    return "".join(reversed(out))


def _ms(ts: float) -> int:
    return min(max(int(ts * 1000), 0), _MS_MAX)


def ready_at(job: Job) -> float:
    return job.eta if job.eta is not None else job.created_at


def ready_name(job: Job) -> str:
    """Sortable name for ``ready/``.  Priorities beyond +/-1,088,391,167 sort
    as that bound (the job's own priority is kept unchanged)."""
    pri = min(max(job.priority, -_PRI_MAX), _PRI_MAX)
    kind = "due" if job.state == JobState.SCHEDULED else "job"
    return f"{_b36(_PRI_MAX - pri, _PRI_WIDTH)}{_b36(_ms(ready_at(job)), _MS_WIDTH)}-{job.id}.{kind}"


def sched_name(job: Job) -> str:
    return f"{_b36(_ms(job.eta or 0.0), _MS_WIDTH)}-{job.id}.job"


def id_from_name(name: str) -> str | None:
    """The job id in a ready/sched name, or None for a name we did not write."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or f".{suffix}" not in READY_SUFFIXES:
        return None
    prefix, dash, job_id = stem.partition("-")
    if not dash or len(prefix) not in (_MS_WIDTH, _PRI_WIDTH + _MS_WIDTH) or not job_id:
        return None
    return job_id


def ms_from_name(name: str) -> int:
    """The ready/eta time (ms) encoded in a ready or sched name."""
    prefix = name.partition("-")[0]
    return int(prefix[-_MS_WIDTH:], 36)


def sched_prefix(at: float) -> str:
    """Sched names sorting before this have an eta at or before ``at`` (ms)."""
    return _b36(_ms(at) + 1, _MS_WIDTH)


class Layout:
    """The directory tree of one backend, created with owner-only permissions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.ready = root / "ready"
        self.sched = root / "sched"
        self.run = root / "run"
        self.done = root / "done"
        self.locks = root / "locks"
        self.unique = root / "unique"
        self.ids = root / "ids"
        self.quarantine = root / "quarantine"
        self.workers = root / "workers"
        self.doorbell = root / "doorbell"
        self._known_queue_dirs: set[str] = set()
        self._ready_dirs: dict[str, str] = {}

    def create(self) -> None:
        """Create the tree; a fault of the environment raises a one-line
        :class:`~nuvom_kernel.errors.StoreError` naming the directory and the fix."""
        try:
            make_private_dir(self.root)
            for sub in SUBDIRS:
                make_private_dir(self.root / sub)
        except FileExistsError as exc:  # a file where the queue directory should be
            raise StoreAccessError(
                f"the file backend's queue directory {self.root} (or a folder above it) is a file, not a "
                "directory; move it away or set NUVOM_FILE_BACKEND_DIR to a directory path", self.root) from exc
        except OSError as exc:
            raise store_error(exc, exc.filename or self.root, what="the file backend's queue directory",
                              setting="NUVOM_FILE_BACKEND_DIR") from exc

    def queue_dir(self, base: Path, queue: str) -> Path:
        path = base / queue
        key = str(path)
        if key not in self._known_queue_dirs:
            make_private_dir(path)
            self._known_queue_dirs.add(key)
        return path

    def ready_dir(self, queue: str) -> str:
        """``ready/<queue>`` as a string, created on first use (the enqueue hot path)."""
        path = self._ready_dirs.get(queue)
        if path is None:
            path = self._ready_dirs[queue] = str(self.queue_dir(self.ready, queue))
        return path

    def ready_path(self, job: Job) -> Path:
        return self.queue_dir(self.ready, job.queue) / ready_name(job)

    def sched_path(self, job: Job) -> Path:
        return self.queue_dir(self.sched, job.queue) / sched_name(job)

    def run_path(self, job_id: str) -> Path:
        return self.run / f"{job_id}.job"

    def done_path(self, job_id: str) -> Path:
        return self.done / f"{job_id}.job"

    def home(self, job: Job, at: float | None = None) -> Path:
        """Where a job in its current state belongs (at time ``at``, default now)."""
        if job.state in LEASED_STATES:
            return self.run_path(job.id)
        if job.state == JobState.QUEUED:
            return self.ready_path(job)
        if job.state == JobState.SCHEDULED:
            # a due scheduled job waits in ready/ so claims need not look at sched/
            return self.sched_path(job) if job.eta is not None and job.eta > (now() if at is None else at) else self.ready_path(job)
        return self.done_path(job.id)

    def queues(self, base: Path) -> list[str]:
        try:
            with os.scandir(base) as entries:
                return sorted(e.name for e in entries if e.is_dir())
        except FileNotFoundError:
            return []


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it owner-only on POSIX, whatever the umask."""
    kernel_make_private_dir(path)  # every missing parent (.nuvom itself) owner-only too
    if os.name == "posix" and (path.stat().st_mode & 0o777) != DIR_MODE:
        os.chmod(path, DIR_MODE)
