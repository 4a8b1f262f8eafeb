"""Operations from Python: look at jobs, retry, cancel, list, enqueue, purge,
stats and schedules.

Each function takes an optional ``app`` (a :class:`nuvom.Nuvom`); without one
it uses the default app configured from the environment, ``.env`` and
``pyproject.toml``, like the ``nuvom`` command line (which is built on these
functions).  Ids are validated before any backend sees them
(``InvalidIdError``); an unknown id raises ``JobNotFoundError``.

The functions live in :mod:`nuvom_support.operations`; this module is their
public name.
"""

from __future__ import annotations

from nuvom_support.operations import (
    LEGACY_STATUS,
    build_job,
    cancel_job,
    cancel_schedule,
    enqueue,
    get_job,
    get_job_status,
    get_schedule,
    iter_jobs,
    list_jobs,
    list_schedules,
    live_workers,
    normalize_states,
    parse_duration,
    parse_time,
    pause_schedule,
    purge_jobs,
    purge_schedules,
    query_jobs,
    rerun_job,
    result,
    resume_schedule,
    retry_job,
    retry_jobs,
    retry_or_rerun,
    stats,
    task_options_from_manifest,
)

__all__ = [
    "LEGACY_STATUS",
    "build_job",
    "cancel_job",
    "cancel_schedule",
    "enqueue",
    "get_job",
    "get_job_status",
    "get_schedule",
    "iter_jobs",
    "list_jobs",
    "list_schedules",
    "live_workers",
    "normalize_states",
    "parse_duration",
    "parse_time",
    "pause_schedule",
    "purge_jobs",
    "purge_schedules",
    "query_jobs",
    "rerun_job",
    "result",
    "resume_schedule",
    "retry_job",
    "retry_jobs",
    "retry_or_rerun",
    "stats",
    "task_options_from_manifest",
]
