"""One job per id, across processes: ``ids/<id>`` is taken with ``O_EXCL``.

Enqueueing a job first creates its id's marker.  Only one producer can; a
second producer of the same id waits for the first one's job to appear and
returns it (the same answer every backend gives).  A marker whose job never
appeared (its producer died between the two steps) is taken over once it is
older than the lock staleness.  Purging a job removes its marker.

Markers are not fsynced: after a power cut a marker may be missing while
its (fsynced) job survives; the id is then not protected against a second
enqueue until the job is purged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from nuvom_kernel.models import Job

_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)


class IdMarkers:
    def __init__(self, directory: Path, stale_secs: float) -> None:
        self.directory = directory
        self._prefix = os.path.join(directory, "")
        self.stale_secs = stale_secs

    def take(self, job_id: str) -> bool:
        """True if this call created the marker (the id is new)."""
        try:
            os.close(os.open(self._prefix + job_id, _FLAGS, 0o600))
        except FileExistsError:
            return False
        return True

    def existing(self, job_id: str, get: Callable[[str], Job | None]) -> Job | None:
        """The stored job holding ``job_id``, waiting while its producer is
        still publishing; None if the marker is an orphan (take the id)."""
        marker = self.directory / job_id
        delay = 0.001
        while True:
            job = get(job_id)
            if job is not None:
                return job
            try:
                age = time.time() - marker.stat().st_mtime
            except FileNotFoundError:  # purged meanwhile: the id is free again
                return None if self.take(job_id) else self.existing(job_id, get)
            if age > self.stale_secs:
                os.utime(marker)  # ours now
                return None
            time.sleep(delay)
            delay = min(0.05, delay * 2)

    def forget(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            try:
                os.unlink(self.directory / job_id)
            except FileNotFoundError:
                pass
