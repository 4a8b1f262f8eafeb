"""The worker's periodic duties, on their own thread.

Every tick (at most half a second) the heartbeat renews the leases of every
job the worker holds (running or prefetched), returns other workers' expired
leases to the queue, refreshes the worker's registration, watches for stop
files and delivers cancellations.  Purging expired results is slow work and
runs on the maintenance thread (:mod:`nuvom_kernel.maintenance`), started and
joined here, so it never delays a renewal.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nuvom_kernel.errors import StoreError
from nuvom_kernel.maintenance import Maintenance
from nuvom_kernel.models import WorkerInfo, now

if TYPE_CHECKING:
    from nuvom_kernel.worker import Worker
    from nuvom_kernel.worker_jobs import Held

log = logging.getLogger("nuvom.worker")


def stop_file(root: Path, worker_id: str | None = None) -> Path:
    """The file a portable stop request creates (``nuvom stop`` or any process)."""
    name = f"stop-{worker_id}" if worker_id else "stop-all"
    return root / ".nuvom" / "workers" / name


class Heartbeat:
    """Runs on the worker's heartbeat thread; reads and signals the worker's state."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.maintenance = Maintenance(worker)

    def run(self) -> None:
        self.maintenance.start()
        try:
            self._beat()
        finally:
            self.maintenance.join(timeout=2.0)

    def _beat(self) -> None:
        renew_every = max(0.05, self.w.lease_secs / 3)
        tick = min(0.5, renew_every)
        last_renew = last_sweep = time.monotonic()
        queue = self.w.app.queue
        while not self.w._stopped.wait(tick):
            t = time.monotonic()
            try:
                due = t - last_renew >= renew_every
                if due:
                    last_renew = t
                self.beat(renew=due)
                if t - last_sweep >= self.w.settings.sweep_interval_secs:
                    last_sweep = t
                    moved = queue.sweep()
                    if moved:
                        log.info("worker %s: returned %d expired lease(s) to the queue", self.w.id, moved)
                        self.w._wake.set()
                        self.w.app.plugins.leases_expired(self.w.id, int(moved))
                        self.report_dead(getattr(moved, "dead", ()))
                self.check_stop_files()
            except StoreError as exc:  # an environment fault: its message names the path and the fix
                log.error("worker %s: heartbeat failed (will retry): %s", self.w.id, exc)
            except Exception:
                log.exception("worker %s: heartbeat failed (will retry)", self.w.id)

    def report_dead(self, dead: Any) -> None:
        """Jobs this worker's sweep made dead (lease-expiry budget spent): the
        same hooks, and the separate result store, as a death in the loop."""
        plugins = self.w.app.plugins
        for before, record in dead:
            log.warning("worker %s: job %s (%s) is dead: %s", self.w.id, record.id, record.task, record.reason)
            if not self.w.app.shares_storage:
                self.w._save_result(record)
            plugins.job_dead(record, record.reason or "dead")
            plugins.job_finished(before, record)

    def beat(self, renew: bool) -> None:
        """One round trip: registration and lease renewal when due, lost leases and
        cancellation requests every tick (cancellations arrive within a tick)."""
        with self.w._held_lock:
            leases = {jid: h.job.token for jid, h in self.w._held.items() if h.job.token is not None}
        if not leases and not renew:
            return
        info = self.info("stopping" if self.w._stop.is_set() else "running") if renew else None
        beat = self.w.app.queue.heartbeat(info, leases, self.w.lease_secs if renew else 0.0)  # type: ignore[arg-type]
        for jid in beat.lost:
            with self.w._held_lock:
                held = self.w._held.get(jid)
                # an attempt that already ended may just have been recorded by the
                # loop's round trip (a real loss shows there, as a refused outcome)
                still_held = held is not None and held.job.token == leases[jid] and not held.ended
            if still_held and held is not None:
                log.warning("worker %s lost the lease of job %s; its outcome will be refused", self.w.id, jid,
                            extra={"event": "job.lease_lost", "worker_id": self.w.id, "job_id": jid,
                                   "task": held.job.task, "queue": held.job.queue, "attempt": held.job.attempts})
                self.stop_lost(jid, held)
        self.deliver_cancellations(beat.cancel_requested)

    def deliver_cancellations(self, job_ids: set[str]) -> None:
        """Deliver cancellations of jobs this worker holds (cooperative on threads,
        a cancelled coroutine, a terminated child on the process executor)."""
        for jid in job_ids:
            with self.w._held_lock:
                held = self.w._held.get(jid)
            if held is None or held.job.cancel_requested:
                continue
            held.job.cancel_requested = True
            if held.ctx is None:
                self.w._cancel_unstarted.put(jid)  # started but waiting for a slot: the loop ends it
                self.w._wake.set()
                continue
            held.ctx.cancel_event.set()
            executor = self.w._executor_for(held.task, held.job) if held.task is not None else self.w.executor
            delivered = executor.cancel(jid)
            log.info("job %s: cancellation requested (%s)", jid,
                     "delivered" if delivered else "the task must check current_job().is_cancelled()")

    def stop_lost(self, jid: str, held: Held | None) -> None:
        """Another worker may run this job now: ask our copy to stop (cooperative
        on threads, a cancelled coroutine, a terminated child on the process executor)."""
        if held is None or held.ctx is None or held.ended:
            return  # still buffered (its completion is refused) or already over
        held.ctx.cancel_event.set()
        executor = self.w._executor_for(held.task, held.job) if held.task is not None else self.w.executor
        try:
            executor.cancel(jid)
        except Exception:
            log.exception("worker %s: stopping the copy of job %s that lost its lease failed", self.w.id, jid)

    def info(self, state: str) -> WorkerInfo:
        return WorkerInfo(
            id=self.w.id, host=socket.gethostname(), pid=os.getpid(), queues=self.w.queues,
            concurrency=self.w.concurrency, executor=self.w.executor_name, started_at=self.w._started_at,
            heartbeat_at=now(), state=state,  # type: ignore[arg-type]
            jobs_done=self.w.stats.succeeded + self.w.stats.failed + self.w.stats.dead + self.w.stats.cancelled,
        )

    def register(self, state: str) -> None:
        if not self.w.app.provides("workers"):
            return
        try:
            self.w.app.workers.register_worker(self.info(state))
        except Exception:
            log.exception("worker %s: registering failed", self.w.id)

    def check_stop_files(self) -> None:
        root = self.w.app.root
        mine = stop_file(root, self.w.id)
        if mine.exists():
            log.info("worker %s: stop requested through %s", self.w.id, mine)
            self.w.request_stop()
            return
        everyone = stop_file(root)
        try:
            if everyone.stat().st_mtime >= self.w._started_at:
                log.info("worker %s: stop requested through %s", self.w.id, everyone)
                self.w.request_stop()
        except FileNotFoundError:
            pass
