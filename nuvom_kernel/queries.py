"""Listing jobs: the filter, the page and the keyset cursor every
:class:`~nuvom_kernel.contracts.JobStore` uses (re-exported by
:mod:`nuvom_kernel.contracts`)."""

from __future__ import annotations

from dataclasses import dataclass

from nuvom_kernel.models import Job, JobState

__all__ = ["JobFilter", "JobPage", "after_cursor", "decode_cursor", "encode_cursor"]


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a :meth:`JobStore.query_jobs` call returns (every field optional)."""

    states: frozenset[JobState] | None = None
    task: str | None = None
    queue: str | None = None
    #: created at or after this time
    since: float | None = None
    #: created before this time
    until: float | None = None
    #: a case-insensitive substring of the job id or the task name
    search: str | None = None

    def matches(self, state: JobState, task: str, queue: str, created_at: float, job_id: str) -> bool:
        if self.states is not None and state not in self.states:
            return False
        if (self.task is not None and task != self.task) or (self.queue is not None and queue != self.queue):
            return False
        if (self.since is not None and created_at < self.since) or (self.until is not None and created_at >= self.until):
            return False
        if self.search:
            needle = self.search.lower()
            return needle in job_id.lower() or needle in task.lower()
        return True


@dataclass
class JobPage:
    """One page of jobs, newest first (``created_at``, then id)."""

    jobs: list[Job]
    #: pass back as ``cursor`` for the next page; ``None`` on the last page
    cursor: str | None = None


def encode_cursor(created_at: float, job_id: str) -> str:
    """The keyset position after a job: opaque to callers, stable across calls."""
    return f"{created_at!r}~{job_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    created, sep, job_id = cursor.rpartition("~")
    try:
        if not sep or not job_id:
            raise ValueError
        return float(created), job_id
    except ValueError:
        raise ValueError(f"invalid cursor {cursor!r}: pass the cursor a previous page returned") from None


def after_cursor(created_at: float, job_id: str, cursor: tuple[float, str] | None) -> bool:
    """True if a job sorts after ``cursor`` in newest-first order."""
    if cursor is None:
        return True
    at, jid = cursor
    return created_at < at or (created_at == at and job_id < jid)
