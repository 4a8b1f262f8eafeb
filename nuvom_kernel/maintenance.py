"""The worker's slow duties, on their own thread: purging expired results.

A purge can take seconds (hundreds of thousands of finished jobs); on the
heartbeat thread it delayed lease renewals past the lease, and healthy long
jobs were redelivered.  Here it runs beside the heartbeat, on a schedule tied
to the retention: every ``result_ttl_secs / 4``, at least every
:data:`MAX_INTERVAL_SECS` and at most every :data:`MIN_INTERVAL_SECS`, the
first time soon after the worker starts.  Backends delete in small batches
(each its own short transaction), so renewals and claims of this and other
workers interleave with a long purge instead of waiting for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from nuvom_kernel.errors import StoreError
from nuvom_kernel.models import now

if TYPE_CHECKING:
    from nuvom_kernel.worker import Worker

log = logging.getLogger("nuvom.worker")

#: Never purge more often than this (a tiny TTL must not turn into a busy loop).
MIN_INTERVAL_SECS = 1.0
#: Never wait longer than this between purges, whatever the TTL.
MAX_INTERVAL_SECS = 60.0
#: The first purge, after the worker's start-up work.
FIRST_DELAY_SECS = 0.2


def purge_interval(ttl_secs: float) -> float:
    """How often expired results are purged for a retention of ``ttl_secs``."""
    return min(MAX_INTERVAL_SECS, max(MIN_INTERVAL_SECS, ttl_secs / 4))


class Maintenance:
    """Owns the maintenance thread of one worker run; stops with the worker."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.purges = 0
        self.purged = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        ttl = self.w.settings.result_ttl_secs
        if not ttl or not self.w.app.provides("jobs"):
            return  # results are kept, or the backend keeps no job store to purge
        self._thread = threading.Thread(target=self._run, args=(float(ttl),),
                                        name=f"nuvom-maintenance-{self.w.id}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, ttl: float) -> None:
        every = purge_interval(ttl)
        wait = FIRST_DELAY_SECS
        while not self.w._stopped.wait(wait):
            started = time.monotonic()
            try:
                purged = self.w.app.jobs.purge(older_than=now() - ttl)
            except StoreError as exc:  # an environment fault: its message names the path and the fix
                log.error("worker %s: purging results older than %g s failed (will retry): %s", self.w.id, ttl, exc)
            except Exception:
                log.exception("worker %s: purging results older than %g s failed (will retry)", self.w.id, ttl)
            else:
                self.purges += 1
                self.purged += purged
                if purged:
                    log.info("worker %s: purged %d result(s) older than %g s in %.2f s",
                             self.w.id, purged, ttl, time.monotonic() - started)
            wait = every
