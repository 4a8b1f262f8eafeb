"""Operations from Python: look at jobs, retry, cancel, list, enqueue, purge, stats.

Each function takes an optional ``app`` (a :class:`nuvom.Nuvom`); without one
it uses the default app configured from the environment, ``.env`` and
``pyproject.toml``, like the ``nuvom`` command line (which is built on these
functions).  Ids are validated before any backend sees them
(``InvalidIdError``); an unknown id raises ``JobNotFoundError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from nuvom_kernel.app import Nuvom, get_app
from nuvom_kernel.contracts import JobFilter, JobPage
from nuvom_kernel.errors import InvalidStateError, NuvomError
from nuvom_kernel.models import (
    RETRYABLE_STATES,
    TERMINAL_STATES,
    Job,
    JobState,
    WorkerInfo,
    now,
    validate_id,
)
from nuvom_kernel.schedules import Schedule, ScheduleState
from nuvom_kernel.task import JobHandle, job_from_options
from nuvom_support import schedules as schedule_api
from nuvom_support.schedules import purge_states

#: Nuvom 0.11's status names, mapped onto this version's states.
LEGACY_STATUS = {
    "success": [JobState.SUCCEEDED],
    "failed": [JobState.FAILED],
    "pending": [JobState.QUEUED, JobState.SCHEDULED, JobState.CLAIMED, JobState.RUNNING],
}
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)
_PAGE = 500


def _app(app: Nuvom | None) -> Nuvom:
    return app if app is not None else get_app()


# -- parsing helpers ---------------------------------------------------------------


def parse_duration(text: str | float | int | timedelta) -> float:
    """Seconds from ``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"`` or a plain number.

    ``ValueError`` (naming the accepted forms) for anything else."""
    if isinstance(text, timedelta):
        return text.total_seconds()
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"duration {text!r} is negative")
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number with an optional unit s, m, h, d or w (30s, 15m, 2h, 7d)")
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def parse_time(text: str | datetime | float | int, *, past: bool = True) -> float:
    """A POSIX timestamp from an ISO date-time or a duration relative to now.

    ``"1h"`` (or ``"-1h"``) means one hour ago when ``past`` is true;
    ``"+30s"`` means 30 seconds from now (a bare ``"90"`` is seconds too).  An
    ISO time without a zone is UTC, as for ``task.options(eta=...)``.  Number
    objects (int, float) are taken as POSIX timestamps."""
    if isinstance(text, datetime):
        moment = text if text.tzinfo else text.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    raw = str(text).strip()
    if raw[:1] in "+-" and _DURATION.match(raw[1:]):
        secs = parse_duration(raw[1:])
        return now() + secs if raw[0] == "+" else now() - secs
    if _DURATION.match(raw):
        secs = parse_duration(raw)
        return now() - secs if past else now() + secs
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use an ISO date-time (2025-08-26T14:00:00+00:00; no zone means UTC) "
            "or a duration (30m, 1h, 7d; +30s for the future)"
        ) from None
    return parse_time(moment)


def normalize_states(values: str | JobState | Iterable[str | JobState] | None) -> list[JobState] | None:
    """Job states from names, case-insensitive; Nuvom 0.11's ``SUCCESS``,
    ``FAILED`` and ``PENDING`` (queued, scheduled or running) are accepted too.
    ``None`` or empty means every state."""
    if values is None:
        return None
    items = [values] if isinstance(values, (str, JobState)) else list(values)
    out: list[JobState] = []
    for item in items:
        if isinstance(item, JobState):
            found = [item]
        else:
            key = str(item).strip().lower()
            found = LEGACY_STATUS.get(key) or ([JobState(key)] if key in JobState._value2member_map_ else [])
            if not found:
                allowed = ", ".join([s.value for s in JobState] + ["SUCCESS", "FAILED", "PENDING"])
                raise ValueError(f"unknown job state {item!r}: use one of {allowed}")
        out.extend(s for s in found if s not in out)
    return out or None


# -- one job -------------------------------------------------------------------------


def get_job(job_id: str, *, app: Nuvom | None = None) -> Job:
    """The job with every field; ``JobNotFoundError`` (a ``KeyError``) if unknown."""
    return _app(app).get_job(job_id)


def get_job_status(job_id: str, *, app: Nuvom | None = None) -> dict[str, Any]:
    """The job as a JSON-ready dict (state, attempts, errors, result, timings)."""
    return get_job(job_id, app=app).public_dict()


def retry_job(job_id: str, *, app: Nuvom | None = None) -> str:
    """Run a finished job again; returns the id of the job that will run.

    A failed, dead or cancelled job runs again as a new attempt of the same job
    (same id, history kept), also when its retries are exhausted.  A succeeded
    job is not overwritten: as in Nuvom 0.11, a copy is enqueued (see
    :func:`rerun_job`) and the copy's new id is returned, while the original
    keeps its result.  ``InvalidStateError`` for a job that is queued,
    scheduled or running (it will run, or is running, already)."""
    return retry_or_rerun(job_id, app=app).id


def retry_or_rerun(job_id: str, *, app: Nuvom | None = None) -> Job:
    """:func:`retry_job`, returning the job that will run (the same job, or a
    copy of a succeeded one: compare ids)."""
    a = _app(app)
    if a.get_job(job_id).state == JobState.SUCCEEDED:
        return rerun_job(job_id, app=a)
    return a.retry_job(job_id)


#: What a copy made by :func:`rerun_job` keeps: what to run and how.
_RERUN_FIELDS = ("task", "args", "kwargs", "queue", "priority", "max_retries", "retry_delay_secs", "backoff",
                 "backoff_max_secs", "jitter", "timeout_secs", "timeout_policy", "store_result", "unique_key",
                 "executor", "tags")


def rerun_job(job_id: str, *, app: Nuvom | None = None) -> Job:
    """Enqueue a new job (new id, attempts from zero) running the same task with
    the same arguments and options as a finished job, which is left as it is.

    ``InvalidStateError`` if the job has not finished (it will run anyway)."""
    a = _app(app)
    job = a.get_job(job_id)
    if not job.is_terminal():
        raise InvalidStateError(f"job {job_id} is {job.state}; it has not finished, so there is nothing to run again")
    return a.enqueue(Job(**{name: getattr(job, name) for name in _RERUN_FIELDS}))


def cancel_job(job_id: str, *, app: Nuvom | None = None) -> Job:
    """Cancel a queued or scheduled job at once; ask a running one to stop.

    Returns the job after the change (``cancelled``, or ``running`` with
    ``cancel_requested``); ``InvalidStateError`` if it has already ended."""
    return _app(app).cancel_job(job_id)


# -- many jobs -------------------------------------------------------------------------


def list_jobs(
    *,
    state: str | JobState | Iterable[str | JobState] | None = None,
    task: str | None = None,
    queue: str | None = None,
    since: datetime | float | str | None = None,
    limit: int = 50,
    offset: int = 0,
    app: Nuvom | None = None,
) -> list[Job]:
    """Jobs newest first (by creation), filtered; page with ``limit``/``offset``.

    ``state`` takes names or :class:`JobState` values (0.11's ``FAILED``,
    ``SUCCESS``, ``PENDING`` too); ``since`` a datetime, a timestamp, an ISO
    string or a duration such as ``"1h"`` (created within the last hour).
    ``limit=0`` means no limit."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    since_ts = None if since is None else parse_time(since)
    if queue is not None:
        validate_id(queue, "queue name")
    return _app(app).list_jobs(states=normalize_states(state), task=task, queue=queue, since=since_ts,
                               limit=limit or 2**31 - 1, offset=offset)


def query_jobs(
    *,
    state: str | JobState | Iterable[str | JobState] | None = None,
    task: str | None = None,
    queue: str | None = None,
    since: datetime | float | str | None = None,
    search: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    app: Nuvom | None = None,
) -> JobPage:
    """One page of jobs newest first, filtered like :func:`list_jobs` plus
    ``search`` (a substring of the id or task name); pass the returned
    ``page.cursor`` back as ``cursor`` for the next page (``None``: last page).
    Keyset paging: a deep page costs what the first one does."""
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if queue is not None:
        validate_id(queue, "queue name")
    states = normalize_states(state)
    wanted = JobFilter(states=frozenset(states) if states else None, task=task, queue=queue,
                       since=None if since is None else parse_time(since), search=search or None)
    return _app(app).query_jobs(wanted, limit=limit, cursor=cursor)


def iter_jobs(
    *,
    state: str | JobState | Iterable[str | JobState] | None = None,
    task: str | None = None,
    queue: str | None = None,
    since: datetime | float | str | None = None,
    app: Nuvom | None = None,
) -> Iterator[Job]:
    """Every matching job, newest first, read page by page (500 at a time)."""
    cursor: str | None = None
    while True:
        page = query_jobs(state=state, task=task, queue=queue, since=since, limit=_PAGE, cursor=cursor, app=app)
        yield from page.jobs
        if page.cursor is None:
            return
        cursor = page.cursor


def retry_jobs(
    *,
    state: str | JobState | Iterable[str | JobState] = "failed",
    task: str | None = None,
    queue: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    app: Nuvom | None = None,
) -> dict[str, Any]:
    """Retry every job in ``state`` (failed, dead and/or cancelled), optionally
    only those of ``task`` or ``queue``.

    Returns ``{"retried": [ids], "skipped": {id: reason}}``; a job that changed
    state meanwhile is skipped, not an error.  ``progress(done, total)`` is
    called after each job.  ``InvalidStateError`` if ``state`` names a state
    that cannot be retried."""
    a = _app(app)
    states = normalize_states(state) or [st for st in JobState if st in RETRYABLE_STATES]
    wrong = [s.value for s in states if s not in RETRYABLE_STATES]
    if wrong:
        raise InvalidStateError(f"cannot retry {', '.join(wrong)} jobs: only failed, dead or cancelled jobs can be retried")
    ids = [j.id for j in iter_jobs(state=states, task=task, queue=queue, app=a)]
    retried: list[str] = []
    skipped: dict[str, str] = {}
    for done, job_id in enumerate(ids, start=1):
        try:
            retried.append(a.retry_job(job_id).id)
        except NuvomError as exc:
            skipped[job_id] = str(exc)
        if progress is not None:
            progress(done, len(ids))
    return {"retried": retried, "skipped": skipped}


def purge_jobs(
    *,
    state: str | JobState | Iterable[str | JobState] | None = None,
    older_than: str | float | timedelta | datetime | None = None,
    app: Nuvom | None = None,
) -> int:
    """Delete finished jobs (only those in ``state`` if given) that finished
    more than ``older_than`` ago (``"7d"``, seconds, a timedelta, or a datetime
    cutoff).  Never deletes queued, scheduled or running jobs: naming one of
    those states raises ``InvalidStateError``.  Returns how many were deleted
    from the queue backend (and also purges a separate result backend when no
    state filter is given)."""
    a = _app(app)
    states = normalize_states(state)
    live = [s.value for s in states or [] if s not in TERMINAL_STATES]
    if live:
        raise InvalidStateError(f"purge never deletes live jobs ({', '.join(live)}); "
                                "cancel them first, or purge succeeded, failed, cancelled or dead jobs")
    cutoff: float | None
    if older_than is None:
        cutoff = None
    elif isinstance(older_than, datetime):
        cutoff = parse_time(older_than)
    else:
        cutoff = now() - parse_duration(older_than)
    deleted = a.jobs.purge(states=states, older_than=cutoff)
    if not a.shares_storage and states is None:
        a.results.purge(older_than=cutoff)
    return deleted


# -- producing ----------------------------------------------------------------------------

_MANIFEST_OPTIONS = ("retries", "retry_delay_secs", "backoff", "backoff_max_secs", "jitter", "timeout_secs",
                     "timeout_policy", "store_result", "priority", "queue", "tags", "executor")


def task_options_from_manifest(task_name: str, *, app: Nuvom | None = None) -> dict[str, Any] | None:
    """The task's literal ``@task(...)`` options (retries, timeout_secs, queue...)
    from the discovery manifest, or ``None`` when there is no manifest or the
    task is not in it."""
    from nuvom_support.manifest import default_manifest_path, load_manifest

    a = _app(app)
    try:
        manifest = load_manifest(default_manifest_path(a.settings, a.root), a.root)
    except NuvomError:
        return None
    if manifest is None:
        return None
    for entry in manifest.tasks:
        if entry.name == task_name:
            return {k: v for k, v in entry.options.items() if k in _MANIFEST_OPTIONS}
    return None


def build_job(
    task_name: str,
    *args: Any,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    eta: datetime | float | str | None = None,
    retries: int | None = None,
    timeout_secs: float | None = None,
    unique_key: str | None = None,
    app: Nuvom | None = None,
) -> Job:
    """A :class:`Job` for ``task_name`` without importing the task.

    Options not given come from the task's literal ``@task(...)`` options in
    the discovery manifest when it lists the task, else from the settings
    (``NUVOM_MAX_RETRIES``, ``NUVOM_JOB_TIMEOUT_SECS``...)."""
    a = _app(app)
    if not task_name or len(task_name) > 200 or any(ord(c) < 32 for c in task_name):
        raise ValueError(f"task name {task_name!r} is invalid: use 1-200 printable characters")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError(f"kwargs must be a JSON object (a dict), not {type(kwargs).__name__}")
    opts = task_options_from_manifest(task_name, app=a) or {}
    if queue is not None:
        opts["queue"] = queue
    if priority is not None:
        opts["priority"] = priority
    if retries is not None:
        opts["retries"] = retries
    if timeout_secs is not None:
        opts["timeout_secs"] = timeout_secs
    opts["queue"] = validate_id(str(opts.get("queue") or "default"), "queue name")
    return job_from_options(task_name, args, kwargs or {}, opts, a.settings,
                            eta=None if eta is None else parse_time(eta, past=False), unique_key=unique_key)


def enqueue(
    task_name: str,
    *args: Any,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    eta: datetime | float | str | None = None,
    retries: int | None = None,
    timeout_secs: float | None = None,
    unique_key: str | None = None,
    app: Nuvom | None = None,
) -> JobHandle[Any]:
    """Enqueue a run of the task called ``task_name`` without importing it.

    ``eta`` takes a datetime, a timestamp, an ISO string or ``"+30s"``.
    Payload limits apply as for ``task.delay()``.  Returns a handle whose
    ``.id`` is the job id and whose ``.result()`` waits for the value."""
    a = _app(app)
    job = build_job(task_name, *args, kwargs=kwargs, queue=queue, priority=priority, eta=eta, retries=retries,
                    timeout_secs=timeout_secs, unique_key=unique_key, app=a)
    return JobHandle(a.enqueue(job).id, a)


# -- stats ----------------------------------------------------------------------------------


def live_workers(queue: str | None = None, *, app: Nuvom | None = None) -> list[WorkerInfo]:
    """Workers that heartbeated on this store within the lease (``NUVOM_LEASE_SECS``)
    and have not stopped; only those consuming ``queue`` if given.  ``CapabilityError``
    if the backend keeps no worker registry."""
    a = _app(app)
    at = now()
    return [w for w in a.workers.list_workers()
            if w.state != "stopped" and at - w.heartbeat_at <= a.settings.lease_secs
            and (queue is None or queue in w.queues)]


def stats(*, app: Nuvom | None = None, window_secs: float = 60.0, scan_limit: int = 20_000) -> dict[str, Any]:
    """A snapshot for dashboards and ``nuvom stats``, as a JSON-ready dict.

    Keys: ``backend``, ``at``, ``total``, ``states`` ({state: n}), ``queues``
    ({queue: {state: n}}), ``oldest_queued_at`` / ``oldest_queued_age_secs``,
    ``workers`` (each with ``heartbeat_age_secs`` and ``status``: ``running``,
    ``stopping``, ``stopped`` or ``stale`` when its last heartbeat is older than
    ``lease_secs``, three missed renewals, so it is probably dead), and
    ``throughput`` (``finished`` jobs in the last ``window_secs``, ``per_sec``).

    Cost: ``counts()``, ``oldest_queued_at()`` and ``list_workers()`` are one
    query each; throughput reads the finished jobs *created* in the last hour
    (at most ``scan_limit``) and keeps those that *finished* in the window, so a
    job created earlier than that is not counted; ``throughput["exact"]`` is
    false when the scan hit ``scan_limit``."""
    a = _app(app)
    q = a.jobs
    at = now()
    per_queue = q.counts()
    states: dict[str, int] = {s.value: 0 for s in JobState}
    for counts in per_queue.values():
        for name, n in counts.items():
            states[name] = states.get(name, 0) + n
    oldest = q.oldest_queued_at()
    stale_after = a.settings.lease_secs
    workers = []
    for w in a.workers.list_workers():
        age = max(0.0, at - w.heartbeat_at)
        status = w.state if w.state == "stopped" or age <= stale_after else "stale"
        workers.append({**w.model_dump(mode="json"), "heartbeat_age_secs": age, "status": status})
    finished = scanned = 0
    exact = True
    lookback = at - max(3600.0, window_secs)
    for job in iter_jobs(state=[st for st in JobState if st in TERMINAL_STATES], since=lookback, app=a):
        scanned += 1
        if job.finished_at is not None and job.finished_at >= at - window_secs:
            finished += 1
        if scanned >= scan_limit:
            exact = False
            break
    return {
        "backend": a.settings.queue_backend,
        "at": at,
        "total": sum(states.values()),
        "states": states,
        "queues": per_queue,
        "oldest_queued_at": oldest,
        "oldest_queued_age_secs": None if oldest is None else max(0.0, at - oldest),
        "workers": workers,
        "stale_after_secs": stale_after,
        "throughput": {"window_secs": window_secs, "finished": finished, "per_sec": finished / window_secs,
                       "scanned": scanned, "exact": exact},
    }


def result(job_id: str, timeout: float | None = None, *, app: Nuvom | None = None) -> Any:
    """Wait for the job and return its value (or raise its error)."""
    return JobHandle(job_id, _app(app)).result(timeout)


__all__ = [
    "LEGACY_STATUS",
    "build_job",
    "cancel_job",
    "enqueue",
    "get_job",
    "get_job_status",
    "iter_jobs",
    "list_jobs",
    "live_workers",
    "query_jobs",
    "normalize_states",
    "parse_duration",
    "parse_time",
    "purge_jobs",
    "result",
    "rerun_job",
    "retry_job",
    "retry_jobs",
    "retry_or_rerun",
    "stats",
    "task_options_from_manifest",
]


# -- schedules (docs/schedules.md) ---------------------------------------------------


def list_schedules(*, app: Nuvom | None = None) -> list[Schedule]:
    """Every stored schedule, by id (``task.schedule()`` and ``@task(cron=...)`` ones)."""
    return schedule_api.schedule_store(_app(app)).list_schedules()


def get_schedule(schedule_id: str, *, app: Nuvom | None = None) -> Schedule:
    """One schedule; ``ScheduleNotFoundError`` for an unknown id."""
    return schedule_api.get_schedule(_app(app), schedule_id)


def pause_schedule(schedule_id: str, *, app: Nuvom | None = None) -> Schedule:
    """Stop firing until resumed."""
    return schedule_api.set_state(_app(app), schedule_id, ScheduleState.PAUSED)


def resume_schedule(schedule_id: str, *, app: Nuvom | None = None) -> Schedule:
    """Fire again (``InvalidStateError`` for a done or cancelled schedule)."""
    return schedule_api.set_state(_app(app), schedule_id, ScheduleState.ACTIVE)


def cancel_schedule(schedule_id: str, *, app: Nuvom | None = None) -> Schedule:
    """Never fire again; the schedule is kept as ``cancelled``."""
    return schedule_api.set_state(_app(app), schedule_id, ScheduleState.CANCELLED)


def purge_schedules(
    *,
    state: str | ScheduleState | Iterable[str | ScheduleState] | None = None,
    older_than: str | float | timedelta | datetime | None = None,
    include_code: bool = False,
    app: Nuvom | None = None,
) -> int:
    """Delete ended schedules (``done`` and ``cancelled``, or those in ``state``)
    that ended more than ``older_than`` ago (``"30d"``, seconds, a timedelta, or a
    datetime cutoff).  Never deletes active or paused ones (``ValueError``).  A
    cancelled ``@task(cron=...)`` schedule is kept unless ``include_code``: its
    record stops the next scheduler from storing the periodic task again.  The
    jobs a schedule fired are jobs like any other (``purge_jobs``).  Returns how
    many schedules were deleted."""
    a = _app(app)
    if older_than is None:
        cutoff = None
    elif isinstance(older_than, datetime):
        cutoff = parse_time(older_than)
    else:
        cutoff = now() - parse_duration(older_than)
    states = None if state is None else purge_states(state)
    return schedule_api.schedule_store(a).purge_schedules(states=states, older_than=cutoff,
                                                          include_code=include_code)
