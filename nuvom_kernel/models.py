"""The data every component exchanges: jobs, their states, errors and outcomes.

Times are POSIX timestamps (float seconds, UTC) so that every backend can
store and compare them cheaply; use :func:`now` to read the clock.
"""

from __future__ import annotations

import re
import time
import uuid
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nuvom_kernel.errors import InvalidIdError

#: Ids and names that may reach a file path or an SQL statement use this charset.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: Windows reserves these device names in any directory, with any extension.
_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}

TimeoutPolicy = Literal["retry", "fail", "ignore"]
Backoff = Literal["fixed", "exponential"]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """A copy of a JSON value that shares no container with it."""
    kind = type(value)
    if kind is list:
        for item in value:
            if type(item) not in _SCALARS:
                return [_copy_json(v) for v in value]
        return value.copy()  # the common case: one copy, no recursion
    if kind is dict:
        for item in value.values():
            if type(item) not in _SCALARS:
                return {k: _copy_json(v) for k, v in value.items()}
        return value.copy()
    if kind in _SCALARS:
        return value
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    return value


def set_fields(model: BaseModel, **values: Any) -> None:
    """Assign fields of a model that does not validate assignments (``Job``)
    without pydantic's per-attribute ``__setattr__``: the state machine's
    steps run for every job, several times, and this is several times faster.
    The values must already have the field's type."""
    model.__dict__.update(values)
    model.__pydantic_fields_set__.update(values)


def now() -> float:
    """Wall-clock time as a POSIX timestamp; the one clock jobs are stamped with."""
    return time.time()


def new_job_id() -> str:
    return uuid.uuid4().hex


def validate_id(value: str, what: str = "job id") -> str:
    """Return ``value`` if it is a safe id, else raise :class:`InvalidIdError`.

    Safe means: 1-64 characters of ``A-Z a-z 0-9 _ . -``, not starting with a
    dot or dash, and not a Windows device name (``CON``, ``NUL.txt``...), so
    the id can become a file name or an SQL value on every platform.
    """
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        shown = repr(value) if isinstance(value, str) and len(value) <= 80 else f"{type(value).__name__} of length {len(value) if isinstance(value, str) else '?'}"
        raise InvalidIdError(
            f"invalid {what} {shown}: use 1-64 characters from A-Z a-z 0-9 _ . - "
            "starting with a letter or digit"
        )
    if value.split(".")[0].upper() in _WINDOWS_RESERVED:
        raise InvalidIdError(f"invalid {what} {value!r}: {value.split('.')[0]!r} is a reserved device name on Windows")
    return value


class JobState(str, Enum):
    """Where a job is in its life.  Terminal states never change again
    except through an explicit ``retry`` by an operator."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    #: taken by a worker (it holds a lease and a token) but not started yet:
    #: the attempt is not counted until the worker records the start
    CLAIMED = "claimed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    def __str__(self) -> str:  # so f-strings and Rich print "queued", not "JobState.QUEUED"
        return self.value


#: States in which a worker holds the job's lease (and a fencing token).
LEASED_STATES = frozenset({JobState.CLAIMED, JobState.RUNNING})
TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.DEAD})
#: States from which an operator may retry a job.
RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.DEAD, JobState.CANCELLED})


class ErrorInfo(BaseModel):
    """One attempt's failure, kept on the job for every attempt."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    attempt: int = 0
    type: str
    message: str = ""
    traceback: str = ""
    at: float = Field(default_factory=now)
    timed_out: bool = False


class Transition(BaseModel):
    """A state change with its time, and a note when there is something to say."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    state: JobState
    at: float = Field(default_factory=now)
    note: str | None = None


class Job(BaseModel):
    """A job: what to run, how, and everything that has happened to it.

    The queue backend owns the authoritative copy.  ``token``,
    ``lease_expires_at`` and ``worker_id`` are set while a worker holds the
    job's lease; completion is accepted only with the current ``token``.
    """

    model_config = ConfigDict(extra="ignore", validate_assignment=False, defer_build=True)

    id: str = Field(default_factory=new_job_id)
    task: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    eta: float | None = None

    state: JobState = JobState.QUEUED
    attempts: int = 0
    max_retries: int = 0
    retry_delay_secs: float = 0.0
    backoff: Backoff = "fixed"
    backoff_max_secs: float = 3600.0
    jitter: bool = True
    timeout_secs: float | None = None
    timeout_policy: TimeoutPolicy = "fail"
    store_result: bool = True
    unique_key: str | None = None
    executor: str | None = None
    tags: list[str] = Field(default_factory=list)
    #: task options that plugins declared (``nuvom_register_task_options``), e.g. ``rate_limit``
    options: dict[str, Any] = Field(default_factory=dict)

    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    started_at: float | None = None
    finished_at: float | None = None
    history: list[Transition] = Field(default_factory=list)
    errors: list[ErrorInfo] = Field(default_factory=list)
    result: Any = None
    progress: Any = None
    reason: str | None = None
    cancel_requested: bool = False
    #: leases that expired while the job ran (its worker died or hung); they do
    #: not use ``max_retries``.  Past ``max_lease_expiries`` the job is ``dead``.
    lease_expiries: int = 0
    max_lease_expiries: int = 3

    token: int | None = None
    lease_expires_at: float | None = None
    worker_id: str | None = None

    @property
    def max_attempts(self) -> int:
        """Attempts allowed in all: the first run plus ``max_retries``."""
        return self.max_retries + 1

    @property
    def last_error(self) -> ErrorInfo | None:
        return self.errors[-1] if self.errors else None

    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def record(self, state: JobState, at: float | None = None, note: str | None = None) -> None:
        """Move to ``state`` and append the transition to ``history``."""
        at = now() if at is None else at
        fields = self.__dict__
        fields["state"] = state
        fields["updated_at"] = at
        self.__pydantic_fields_set__.update(_RECORD_FIELDS)
        fields["history"].append(Transition(state=state, at=at, note=note))

    def snapshot(self) -> Job:
        """A copy safe to hand out: lists are copied, values are not shared.

        Much cheaper than ``model_copy(deep=True)``: transitions and errors are
        never mutated after they are appended, so the lists are copied but the
        entries are shared; JSON values (args, kwargs, result, progress) are
        copied only when they are containers.
        """
        values = self.__dict__.copy()
        values["args"] = _copy_json(values["args"])
        values["kwargs"] = _copy_json(values["kwargs"])
        if values["result"] is not None:
            values["result"] = _copy_json(values["result"])
        if values["progress"] is not None:
            values["progress"] = _copy_json(values["progress"])
        values["tags"] = list(values["tags"])
        values["history"] = list(values["history"])
        values["errors"] = list(values["errors"])
        cls = type(self)
        if cls.__private_attributes__ or self.__pydantic_extra__ is not None:
            return self.model_copy(update={name: values[name] for name in _SNAPSHOT_FIELDS})
        # what model_copy(update=...) does, without its generic steps
        copied = cls.__new__(cls)
        object.__setattr__(copied, "__dict__", values)
        object.__setattr__(copied, "__pydantic_extra__", None)
        object.__setattr__(copied, "__pydantic_fields_set__", self.__pydantic_fields_set__ | _SNAPSHOT_FIELDS)
        object.__setattr__(copied, "__pydantic_private__", None)
        return copied

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> Job:
        return cls.model_validate_json(data)

    def public_dict(self) -> dict[str, Any]:
        """Everything but the lease internals, as JSON-ready values."""
        return self.model_dump(mode="json", exclude={"token"})


_RECORD_FIELDS = ("state", "updated_at")
_SNAPSHOT_FIELDS = frozenset({"args", "kwargs", "result", "progress", "tags", "history", "errors"})

OutcomeKind = Literal["succeeded", "failed", "retry", "dead", "cancelled"]


class Outcome(BaseModel):
    """What a worker reports when an attempt ends.

    - ``succeeded``: ``result`` holds the return value (``None`` if not stored).
    - ``failed``: terminal failure; ``error`` says why.
    - ``retry``: the attempt failed and the job goes back to the queue at ``eta``.
    - ``dead``: never to be run again (``reason`` says why).
    - ``cancelled``: the job stopped because it was asked to.
    """

    model_config = ConfigDict(extra="ignore", defer_build=True)

    kind: OutcomeKind
    result: Any = None
    error: ErrorInfo | None = None
    eta: float | None = None
    reason: str | None = None
    note: str | None = None
    at: float = Field(default_factory=now)


def apply_outcome(job: Job, outcome: Outcome, at: float | None = None) -> Job:
    """Apply ``outcome`` to ``job`` in place and return it.

    Every backend uses this one function, so the state machine is the same
    everywhere; a backend only has to make the read-modify-write atomic.

    ``at`` is the backend's clock (authoritative): the transition is stamped
    with it, and a retry's eta keeps the delay the worker asked for
    (``outcome.eta - outcome.at``) counted from ``at``, so a worker whose
    clock is off never moves a job's eta.  Without ``at``, the outcome's own
    times are used.
    """
    eta = outcome.eta
    if at is None:
        at = outcome.at
    elif eta is not None:
        eta = at + max(0.0, eta - outcome.at)
    if outcome.error is not None:
        job.errors.append(outcome.error)
    kind = outcome.kind
    if kind == "retry":
        set_fields(job, token=None, lease_expires_at=None, worker_id=None, eta=eta)
        if eta is not None and eta > at:
            job.record(JobState.SCHEDULED, at, outcome.note or "retry scheduled")
        else:
            job.record(JobState.QUEUED, at, outcome.note or "retry")
        return job
    if kind == "succeeded":
        set_fields(job, token=None, lease_expires_at=None, worker_id=None, finished_at=at,
                   result=outcome.result if job.store_result else None)
        job.record(JobState.SUCCEEDED, at, outcome.note)
        return job
    set_fields(job, token=None, lease_expires_at=None, worker_id=None, finished_at=at)
    if kind == "failed":
        job.record(JobState.FAILED, at, outcome.note)
    elif kind == "dead":
        set_fields(job, reason=outcome.reason)
        job.record(JobState.DEAD, at, outcome.reason)
    elif kind == "cancelled":
        reason = outcome.reason or "cancelled"
        set_fields(job, reason=reason)
        job.record(JobState.CANCELLED, at, reason)
    return job


class WorkerInfo(BaseModel):
    """A worker's registration, refreshed with every heartbeat."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    executor: str
    started_at: float
    heartbeat_at: float
    state: Literal["running", "stopping", "stopped"] = "running"
    jobs_done: int = 0


class TaskInfo(BaseModel):
    """What is known of a task without importing it (from discovery) or after."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    name: str
    module: str
    qualname: str
    path: str | None = None
    line: int | None = None
    is_async: bool = False
    options: dict[str, Any] = Field(default_factory=dict)


def start_update(job: Job, at: float | None = None) -> Job:
    """A claimed job starts: the attempt counts from here."""
    at = now() if at is None else at
    set_fields(job, attempts=job.attempts + 1, started_at=at)
    job.record(JobState.RUNNING, at, f"attempt {job.attempts} by {job.worker_id}")
    return job
