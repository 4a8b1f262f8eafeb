"""The scheduler loop: read due schedules, fire each occurrence once.

Leaderless: every worker (and every ``nuvom runscheduler``) runs this loop
against the same store.  Each fire is the store's atomic
``fire_schedule``, which enqueues the occurrence's job (id from schedule and
fire time) and advances the schedule only if nobody did it first; a loop
that loses the race simply moves on.

Between passes a loop sleeps.  When the store tells about schedule changes
(an optional ``subscribe_schedules(callback)`` returning an unsubscribe
function, or ``None`` when it cannot: the PostgreSQL and Redis stores), the
loop sleeps until the earliest active schedule is due, at most
``idle_secs``, and wakes early when a schedule is added, replaced, paused or
resumed anywhere: an idle loop then reads the store once per ``idle_secs``.
Otherwise it reads the due schedules every ``poll`` seconds.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nuvom_kernel.models import Job
from nuvom_kernel.schedules import Schedule, fire_job_id
from nuvom_kernel.task import job_from_options
from nuvom_scheduler.timing import Defaults, plan_fire

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom

log = logging.getLogger("nuvom.scheduler")

#: How often a running loop deletes ended schedules past the retention (at most).
PURGE_EVERY_SECS = 600.0


class SchedulerLoop:
    """Fires due schedules of ``app`` every ``poll`` seconds (plus up to ``jitter``)."""

    def __init__(
        self,
        app: Nuvom,
        *,
        poll: float = 1.0,
        batch: int = 100,
        jitter: float = 0.0,
        defaults: Defaults | None = None,
        clock: Callable[[], float] = time.time,
        periodic: bool = True,
        name: str = "scheduler",
        in_worker: bool = False,
        retention_secs: float | None = None,
        idle_secs: float = 10.0,
    ) -> None:
        if not poll > 0:
            raise ValueError(f"poll={poll!r} is invalid: use a number of seconds > 0")
        if not idle_secs > 0:
            raise ValueError(f"idle_secs={idle_secs!r} is invalid: use a number of seconds > 0")
        if batch < 1:
            raise ValueError(f"batch={batch!r} is invalid: use an integer >= 1")
        if not jitter >= 0:
            raise ValueError(f"jitter={jitter!r} is invalid: use a number of seconds >= 0")
        self.app = app
        self.poll = poll
        self.batch = batch
        self.jitter = jitter
        self.defaults = defaults or Defaults()
        self.clock = clock
        #: longest sleep while the store tells about schedule changes (the fallback for a lost one)
        self.idle_secs = max(poll, idle_secs)
        #: passes that only looked at the earliest schedule (tests read it)
        self.peeks = 0
        self.periodic = periodic
        self.name = name
        #: done and cancelled schedules older than this are deleted by :meth:`run`; None keeps them
        self.retention_secs = retention_secs
        self.purged = 0
        self._last_purge = float("-inf")
        #: inside a worker, the worker's own start and stop lines say it all: the loop's are debug
        self._lifecycle_level = logging.DEBUG if in_worker else logging.INFO
        self.fired = 0
        self.lost_races = 0
        self._stop = threading.Event()
        self._woken = threading.Event()  # a schedule changed (or stop): look now
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()

    # -- one pass ------------------------------------------------------------------

    def build_job(self, schedule: Schedule, fire_at: float) -> Job:
        """The job of one occurrence: the schedule's task, arguments and options."""
        eta = fire_at + random.uniform(0, schedule.jitter_secs) if schedule.jitter_secs else fire_at
        job = job_from_options(schedule.task, schedule.args, schedule.kwargs, schedule.options,
                               self.app.settings, eta=eta)
        job.id = fire_job_id(schedule.id, fire_at)
        job.tags = [*job.tags, f"schedule:{schedule.id}"]
        if schedule.plugin_options:
            job.options = dict(schedule.plugin_options)
        # the arguments in stored form: encoded by the selected serializer (msgpack ...) as app.enqueue does
        return self.app._stored_call(job)

    def run_once(self) -> int:
        """Fire what is due now; returns the number of jobs enqueued by this loop."""
        store = self.app.schedules
        at = self.clock()
        fired = 0
        for schedule in store.due_schedules(at, self.batch):
            expected = schedule.next_fire_at
            if expected is None:
                continue
            try:
                plan = plan_fire(schedule, at, self.defaults, self.app.plugins.schedule_next_fire)
                jobs = [self.build_job(schedule, t) for t in plan.fire_times]
            except Exception as exc:  # one broken schedule (a zone missing here) must not stop the others
                if schedule.id not in self._reported:
                    self._reported.add(schedule.id)
                    log.error("schedule %s cannot fire: %s", schedule.id, exc,
                              extra={"event": "schedule.error", "schedule_id": schedule.id})
                continue
            if store.fire_schedule(schedule.id, expected, jobs, plan.next_fire_at,
                                   missed=plan.missed, coalesced=plan.coalesced):
                fired += len(jobs)
                for job in jobs:
                    self.app.plugins.job_enqueued(job)
                self.app.plugins.schedule_fired(schedule, jobs, plan.missed, plan.coalesced)
                if plan.missed:
                    log.warning("schedule %s: %d occurrence(s) missed their grace period and were skipped",
                                schedule.id, plan.missed,
                                extra={"event": "schedule.missed", "schedule_id": schedule.id, "missed": plan.missed})
                log.debug("schedule %s fired %d job(s); next at %s", schedule.id, len(jobs), plan.next_fire_at,
                          extra={"event": "schedule.fired", "schedule_id": schedule.id, "jobs": [j.id for j in jobs]})
            else:
                self.lost_races += 1
        self.fired += fired
        return fired

    def purge_ended(self) -> int:
        """Delete done and cancelled schedules that ended more than ``retention_secs``
        ago (code-declared cancelled ones are kept: they stop the periodic task from
        being stored again).  Every loop may do it; a delete is a delete."""
        if not self.retention_secs:
            return 0
        deleted = int(self.app.schedules.purge_schedules(older_than=self.clock() - self.retention_secs))
        self.purged += deleted
        if deleted:
            log.info("%s: deleted %d schedule(s) that ended more than %gs ago", self.name, deleted,
                     self.retention_secs, extra={"event": "schedule.purged", "deleted": deleted})
        return deleted

    def _maybe_purge(self) -> None:
        if not self.retention_secs or time.monotonic() - self._last_purge < min(PURGE_EVERY_SECS,
                                                                                  self.retention_secs / 4):
            return
        self._last_purge = time.monotonic()
        try:
            self.purge_ended()
        except Exception as exc:  # retention can wait for the next round; firing must go on
            log.error("%s: deleting ended schedules failed (will retry): %s", self.name, exc,
                      extra={"event": "scheduler.error"})

    # -- running -------------------------------------------------------------------

    def sync_periodic(self) -> int:
        """Store the schedules that tasks declare in code (``@task(cron=...)``); see periodic.py."""
        from nuvom_scheduler.periodic import sync_periodic

        return sync_periodic(self.app)

    def next_fire_at(self) -> float | None:
        """When the earliest active schedule is due (``None``: there is none): one
        read of the store (``due_schedules`` up to infinity, limit 1)."""
        self.peeks += 1
        head = self.app.schedules.due_schedules(math.inf, 1)
        return head[0].next_fire_at if head else None

    def _sleep_after(self, next_at: float | None, at: float) -> float:
        """Until ``next_at`` (bounded by ``idle_secs``).  A schedule still due
        after a pass (its fire failed) is looked at again after ``poll``."""
        if next_at is None:
            return self.idle_secs
        ahead = next_at - at
        return self.poll if ahead <= 0 else min(self.idle_secs, ahead)

    def run_pass(self, told: bool) -> float:
        """One pass; returns how long to sleep.  ``told``: the store tells about
        schedule changes, so the pass may only look at the earliest schedule."""
        if not told:
            return 0.0 if self.run_once() >= self.batch else self.poll
        at = self.clock()
        next_at = self.next_fire_at()
        if next_at is None or next_at > at:
            return self._sleep_after(next_at, at)
        if self.run_once() >= self.batch:
            return 0.0
        return self._sleep_after(self.next_fire_at(), self.clock())

    def _subscribe(self) -> Callable[[], None] | None:
        subscribe = getattr(self.app.schedules, "subscribe_schedules", None)
        if subscribe is None:
            return None
        try:
            unsubscribe: Callable[[], None] | None = subscribe(self._woken.set)
        except Exception as exc:  # polling works without it
            log.warning("%s: schedule change notifications unavailable (%s); polling every %gs", self.name, exc,
                        self.poll)
            return None
        return unsubscribe

    def run(self) -> None:
        """Loop until :meth:`stop` (foreground)."""
        if self.periodic:
            try:
                self.sync_periodic()
            except Exception as exc:
                log.error("could not store the periodic tasks' schedules: %s", exc)
        unsubscribe = self._subscribe()
        told = unsubscribe is not None
        log.log(self._lifecycle_level, "%s running: %s, batch %d, jitter %.3gs", self.name,
                f"until the next fire, at most {self.idle_secs:g}s (told of changes)" if told else f"poll {self.poll:g}s",
                self.batch, self.jitter, extra={"event": "scheduler.ready"})
        last_error = ""
        try:
            while not self._stop.is_set():
                self._woken.clear()
                try:
                    sleep = self.run_pass(told)
                    last_error = ""
                except Exception as exc:  # the store is unreachable for a moment: try again next poll
                    text = f"{type(exc).__name__}: {exc}"
                    # once per distinct error, not every poll of an outage
                    log.log(logging.ERROR if text != last_error else logging.DEBUG, "%s: a pass failed: %s",
                            self.name, text, extra={"event": "scheduler.error"})
                    last_error, sleep = text, self.poll
                self._maybe_purge()
                if sleep > 0:
                    self._woken.wait(sleep + (random.uniform(0, self.jitter) if self.jitter else 0.0))
        finally:
            if unsubscribe is not None:
                unsubscribe()
        log.log(self._lifecycle_level, "%s stopped: %d job(s) fired", self.name, self.fired,
                extra={"event": "scheduler.stopped"})

    def start(self) -> None:
        """Run in a daemon thread (what a worker does)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"nuvom-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def describe(schedule: Schedule) -> dict[str, Any]:
    """A schedule for people and scripts: the stored fields plus times in its zone."""
    from datetime import datetime

    from nuvom_scheduler.timing import display_zone as zone

    tz = zone(schedule.timezone)

    def local(ts: float | None) -> str | None:
        return None if ts is None else datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")

    data = schedule.to_dict()
    data["state"] = schedule.state.value
    data["every"] = when_text(schedule)
    data["next_fire_local"] = local(schedule.next_fire_at)
    data["last_fire_local"] = local(schedule.last_fire_at)
    return data


def when_text(schedule: Schedule) -> str:
    if schedule.kind == "cron":
        return f"cron {schedule.cron} ({schedule.timezone})"
    if schedule.kind == "interval":
        secs = schedule.interval_secs or 0.0
        return f"every {secs:g}s"
    from datetime import datetime

    from nuvom_scheduler.timing import display_zone as zone

    at = schedule.at or 0.0
    return f"once at {datetime.fromtimestamp(at, zone(schedule.timezone)).isoformat(timespec='seconds')}"
