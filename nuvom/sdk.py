"""Operations from Python: look at jobs, retry, cancel, list.

Each function takes an optional ``app`` (a :class:`nuvom.Nuvom`); without one
it uses the default app configured from the environment, ``.env`` and
``pyproject.toml``, like the ``nuvom`` command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nuvom_kernel.app import Nuvom, get_app
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.task import JobHandle


def _app(app: Nuvom | None) -> Nuvom:
    return app if app is not None else get_app()


def get_job(job_id: str, *, app: Nuvom | None = None) -> Job:
    """The job with every field; ``JobNotFoundError`` (a ``KeyError``) if unknown."""
    return _app(app).get_job(job_id)


def get_job_status(job_id: str, *, app: Nuvom | None = None) -> dict[str, Any]:
    """The job as a JSON-ready dict (state, attempts, errors, result, timings)."""
    return get_job(job_id, app=app).public_dict()


def retry_job(job_id: str, *, app: Nuvom | None = None) -> str:
    """Re-run a failed, dead or cancelled job as a new attempt of the same job.

    Works also when its retries are exhausted.  Returns the job id (unchanged);
    ``InvalidStateError`` for a job that is queued, running or succeeded.
    """
    return _app(app).retry_job(job_id).id


def cancel_job(job_id: str, *, app: Nuvom | None = None) -> Job:
    """Cancel a queued or scheduled job at once; ask a running one to stop."""
    return _app(app).cancel_job(job_id)


def list_jobs(
    *,
    state: str | JobState | list[str | JobState] | None = None,
    task: str | None = None,
    queue: str | None = None,
    since: datetime | float | None = None,
    limit: int = 50,
    offset: int = 0,
    app: Nuvom | None = None,
) -> list[Job]:
    """Jobs newest first, filtered; page with ``limit``/``offset``."""
    states = [state] if isinstance(state, (str, JobState)) else state
    since_ts = since.timestamp() if isinstance(since, datetime) else since
    return _app(app).list_jobs(states=states, task=task, queue=queue, since=since_ts, limit=limit, offset=offset)


def result(job_id: str, timeout: float | None = None, *, app: Nuvom | None = None) -> Any:
    """Wait for the job and return its value (or raise its error)."""
    return JobHandle(job_id, _app(app)).result(timeout)


__all__ = ["cancel_job", "get_job", "get_job_status", "list_jobs", "result", "retry_job"]
