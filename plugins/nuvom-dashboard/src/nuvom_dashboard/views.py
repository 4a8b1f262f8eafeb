"""What each page shows, read from the store through the public contracts only.

Nothing here is kept between requests: every page is computed from the job
store (``app.jobs``: ``counts``, ``query_jobs``, ``get``), the worker registry
(``app.workers``) and the app's operator actions, so a restarted dashboard
shows exactly what the store holds, on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nuvom.sdk import parse_duration, parse_time
from nuvom_dashboard.options import DashboardOptions
from nuvom_kernel.app import Nuvom
from nuvom_kernel.contracts import JobFilter, decode_cursor
from nuvom_kernel.errors import CapabilityError, NuvomError
from nuvom_kernel.models import (
    RETRYABLE_STATES,
    TERMINAL_STATES,
    Job,
    JobState,
    WorkerInfo,
    now,
    validate_id,
)

STATES = [s.value for s in JobState]
LIVE_STATES = frozenset(s for s in JobState if s not in TERMINAL_STATES)
FAILED_STATES = frozenset({JobState.FAILED, JobState.DEAD})


class BadFilter(ValueError):
    """A filter value the dashboard cannot use; the message names the fix."""


@dataclass
class Filters:
    """The jobs list's filters, as the query string carries them."""

    states: list[str] = field(default_factory=list)
    task: str = ""
    queue: str = ""
    since: str = ""
    until: str = ""
    search: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, Any], multi: Iterable[str]) -> Filters:
        return cls(states=[s for s in multi if s], task=str(query.get("task", "")).strip(),
                   queue=str(query.get("queue", "")).strip(), since=str(query.get("since", "")).strip(),
                   until=str(query.get("until", "")).strip(), search=str(query.get("q", "")).strip())

    def to_filter(self) -> JobFilter:
        """The contract's filter; ``BadFilter`` naming the field and the accepted forms."""
        wrong = [s for s in self.states if s not in STATES]
        if wrong:
            raise BadFilter(f"unknown state {wrong[0]!r}: use one of {', '.join(STATES)}")
        if self.queue:
            try:
                validate_id(self.queue, "queue name")
            except NuvomError as exc:
                raise BadFilter(str(exc)) from None
        times: dict[str, float | None] = {}
        for name in ("since", "until"):
            text = getattr(self, name)
            try:
                times[name] = parse_time(text) if text else None
            except ValueError as exc:
                raise BadFilter(f"{name}: {exc}") from None
        return JobFilter(states=frozenset(JobState(s) for s in self.states) if self.states else None,
                         task=self.task or None, queue=self.queue or None, since=times["since"],
                         until=times["until"], search=self.search or None)

    def query(self) -> list[tuple[str, str]]:
        """The query-string pairs that reproduce these filters."""
        pairs = [("state", s) for s in self.states]
        pairs += [(k, v) for k, v in (("task", self.task), ("queue", self.queue), ("since", self.since),
                                      ("until", self.until), ("q", self.search)) if v]
        return pairs

    @property
    def active(self) -> bool:
        return bool(self.query())


def check_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        decode_cursor(cursor)
    except ValueError as exc:
        raise BadFilter(str(exc)) from None
    return cursor


# -- the overview ------------------------------------------------------------------


@dataclass
class Chart:
    """Finished jobs per minute: ``ok[i]`` succeeded and ``bad[i]`` failed or dead in minute ``i``."""

    start: float
    minutes: int
    ok: list[int]
    bad: list[int]
    scanned: int
    #: False when the scan stopped at ``chart_scan_limit`` (older minutes may be undercounted)
    exact: bool


def throughput(app: Nuvom, options: DashboardOptions, at: float) -> Chart:
    """Bucket the finished jobs created in the window by their finish minute.

    Reads at most ``chart_scan_limit`` jobs newest first through ``query_jobs``
    (the contract has no count by time), so a big store costs the same as a
    small one; a job created before the window but finished inside it is not
    counted."""
    minutes = options.chart_minutes
    end = math.floor(at / 60) * 60 + 60
    start = end - minutes * 60
    ok = [0] * minutes
    bad = [0] * minutes
    wanted = JobFilter(states=frozenset(TERMINAL_STATES), since=start)
    scanned = 0
    cursor: str | None = None
    exact = True
    while True:
        page = app.jobs.query_jobs(wanted, limit=min(500, options.chart_scan_limit - scanned), cursor=cursor)
        for job in page.jobs:
            if job.finished_at is None or not start <= job.finished_at < end:
                continue
            slot = int((job.finished_at - start) // 60)
            if job.state == JobState.SUCCEEDED:
                ok[slot] += 1
            elif job.state in FAILED_STATES:
                bad[slot] += 1
        scanned += len(page.jobs)
        cursor = page.cursor
        if cursor is None:
            break
        if scanned >= options.chart_scan_limit:
            exact = False
            break
    return Chart(start=start, minutes=minutes, ok=ok, bad=bad, scanned=scanned, exact=exact)


@dataclass
class WorkerRow:
    info: WorkerInfo
    age: float
    status: str


def overview(app: Nuvom, options: DashboardOptions) -> dict[str, Any]:
    at = now()
    per_queue = app.jobs.counts()
    totals = {s: 0 for s in STATES}
    for counts in per_queue.values():
        for state, n in counts.items():
            totals[state] = totals.get(state, 0) + n
    oldest = app.jobs.oldest_queued_at()
    workers: list[WorkerRow] | None
    try:
        registry = app.workers
    except CapabilityError:
        workers = None  # the page says the backend keeps no registry
    else:
        stale_after = app.settings.lease_secs
        workers = []
        for info in registry.list_workers():
            age = max(0.0, at - info.heartbeat_at)
            status = info.state if info.state == "stopped" or age <= stale_after else "stale"
            workers.append(WorkerRow(info, age, status))
        workers.sort(key=lambda w: (w.status != "running", w.info.id))
    return {
        "at": at,
        "queues": {q: per_queue[q] for q in sorted(per_queue)},
        "totals": totals,
        "total": sum(totals.values()),
        "oldest_age": None if oldest is None else max(0.0, at - oldest),
        "workers": workers,
    }


# -- actions ---------------------------------------------------------------------------


def _narrow(wanted: JobFilter, allowed: frozenset[JobState], action: str) -> JobFilter:
    states = allowed if wanted.states is None else frozenset(wanted.states) & allowed
    if not states:
        names = ", ".join(sorted(s.value for s in allowed))
        past = {"retry": "retried", "cancel": "cancelled"}[action]
        raise BadFilter(f"nothing to {action}: only {names} jobs can be {past}; change the state filter")
    return JobFilter(states=states, task=wanted.task, queue=wanted.queue, since=wanted.since,
                     until=wanted.until, search=wanted.search)


def bulk_preview(app: Nuvom, filters: Filters, allowed: frozenset[JobState], action: str, limit: int) -> str:
    """What a bulk action is about to do, in words, for the confirmation page."""
    narrowed = _narrow(filters.to_filter(), allowed, action)
    found = len(app.jobs.query_jobs(narrowed, limit=limit + 1).jobs)
    states = ", ".join(sorted(s.value for s in narrowed.states or ()))
    scope = [f"{name} {value}" for name, value in (("task", filters.task), ("queue", filters.queue),
                                                 ("created since", filters.since), ("created until", filters.until),
                                                 ("matching", filters.search)) if value]
    what = f"{action.capitalize()} " + (f"the newest {limit} of more than {limit}" if found > limit else str(found))
    return f"{what} {states} job(s)" + (f" ({'; '.join(scope)})" if scope else " (no other filter: all of them)") + "?"


def purge_preview(states: Iterable[str], older_than: str) -> str:
    chosen = list(states)
    what = ", ".join(chosen) if chosen else "every finished (succeeded, failed, cancelled, dead)"
    when = f"that finished more than {older_than} ago" if older_than else "whenever they finished"
    return f"Delete {what} job(s) {when}? This cannot be undone."


def bulk(app: Nuvom, wanted: JobFilter, allowed: frozenset[JobState], action: str, limit: int) -> dict[str, Any]:
    """Retry or cancel the jobs matching ``wanted`` whose state is in ``allowed``,
    at most ``limit`` of them; returns ``{"done", "skipped", "more"}``."""
    page = app.jobs.query_jobs(_narrow(wanted, allowed, action), limit=limit)
    done = skipped = 0
    for job in page.jobs:
        try:
            if action == "retry":
                app.retry_job(job.id)
            else:
                app.cancel_job(job.id, "cancelled from the dashboard")
            done += 1
        except NuvomError:
            skipped += 1  # it changed state meanwhile (another operator, a worker)
    return {"done": done, "skipped": skipped, "more": page.cursor is not None}


def purge_check(states: Iterable[str], older_than: str) -> tuple[list[JobState], float | None]:
    """The states and the age in seconds a purge form asks for; ``BadFilter`` if it
    names a live state or an age that is not a duration."""
    wrong = [s for s in states if s not in STATES]
    if wrong:
        raise BadFilter(f"unknown state {wrong[0]!r}: use succeeded, failed, cancelled or dead")
    chosen = [JobState(s) for s in states]
    live = [s.value for s in chosen if s not in TERMINAL_STATES]
    if live:
        raise BadFilter(f"purge never deletes live jobs ({', '.join(live)}); cancel them first")
    try:
        age = parse_duration(older_than) if older_than else None
    except ValueError as exc:
        raise BadFilter(f"older than: {exc}") from None
    return chosen, age


def purge(app: Nuvom, states: Iterable[str], older_than: str) -> int:
    """Delete finished jobs in ``states`` (default: every finished state) that
    finished more than ``older_than`` ago (``""``: any time)."""
    chosen, age = purge_check(list(states), older_than)
    return app.jobs.purge(states=chosen or None, older_than=None if age is None else now() - age)


RETRYABLE = frozenset(RETRYABLE_STATES)


def job_actions(job: Job) -> list[str]:
    """The actions a job page offers for ``job``'s state."""
    actions = []
    if job.state in RETRYABLE:
        actions.append("retry")
    if job.state in LIVE_STATES and not job.cancel_requested:
        actions.append("cancel")
    return actions


def progress_fraction(progress: Any) -> float | None:
    """A 0..1 fraction for a progress bar, when the value is one we can read:
    a number in 0..1, or ``{"done"|"current": n, "total": m}``."""
    if isinstance(progress, (int, float)) and not isinstance(progress, bool) and 0 <= progress <= 1:
        return float(progress)
    if isinstance(progress, dict):
        done = progress.get("done", progress.get("current"))
        total = progress.get("total")
        if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
            return max(0.0, min(1.0, done / total))
    return None
