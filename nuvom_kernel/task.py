"""The ``@task`` decorator and ``Task`` objects (job handles: :mod:`nuvom_kernel.handles`)."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from nuvom_kernel.errors import TaskNotFoundError
from nuvom_kernel.handles import JobHandle
from nuvom_kernel.models import Job, now, validate_id
from nuvom_kernel.task_options import CALL_OPTIONS, KERNEL_TASK_OPTIONS, validate_plugin_options

if TYPE_CHECKING:
    from datetime import timedelta

    from nuvom_kernel.app import Nuvom

log = logging.getLogger("nuvom.task")
R = TypeVar("R")

#: Options a task (or ``.options()``) may set, with their meaning in docs/execution.md;
#: plugins may declare more (:mod:`nuvom_kernel.task_options`).
TASK_OPTIONS = KERNEL_TASK_OPTIONS
_SCHEDULE_OPTIONS = ("schedule_id", "misfire_grace_secs", "coalesce", "catch_up_limit", "schedule_jitter_secs")
_KNOWN_OPTIONS = frozenset(TASK_OPTIONS) | frozenset(CALL_OPTIONS) | frozenset(_SCHEDULE_OPTIONS)
_UNSET: Any = object()


class TaskRegistry:
    """Tasks by name.  Decorating a function registers it: ``@task`` in the
    module-level registry (every app sees those), ``@app.task`` in that app's
    own registry, whose ``parent`` is the module-level one."""

    def __init__(self, parent: TaskRegistry | None = None) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task[Any]] = {}
        self.parent = parent

    def add(self, task: Task[Any]) -> None:
        with self._lock:
            old = self._tasks.get(task.name)
            if old is not None and (old.module, old.qualname) != (task.module, task.qualname):
                warnings.warn(
                    f"task name {task.name!r} is defined twice: {old.module}.{old.qualname} and "
                    f"{task.module}.{task.qualname}; the second replaces the first. Give one a name=.",
                    stacklevel=4,
                )
            self._tasks[task.name] = task

    def get(self, name: str) -> Task[Any]:
        found = self.find(name)
        if found is None:
            raise TaskNotFoundError(f"no task named {name!r} is registered in this process")
        return found

    def find(self, name: str) -> Task[Any] | None:
        """This registry's task called ``name``, else the parent's."""
        found = self._tasks.get(name)
        if found is None and self.parent is not None:
            return self.parent.find(name)
        return found

    def remove(self, name: str) -> None:
        with self._lock:
            self._tasks.pop(name, None)

    def names(self) -> list[str]:
        inherited = self.parent.names() if self.parent is not None else []
        return sorted(set(self._tasks) | set(inherited))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None


#: Tasks register here when their module is imported (by a worker or a producer).
registry = TaskRegistry()


def _to_timestamp(eta: datetime | float | int | None) -> float | None:
    if eta is None:
        return None
    if isinstance(eta, datetime):
        if eta.tzinfo is None:
            warnings.warn("naive datetime passed as eta; treating it as UTC", stacklevel=4)
            eta = eta.replace(tzinfo=timezone.utc)
        return eta.timestamp()
    if isinstance(eta, (int, float)):
        return float(eta)
    raise TypeError(f"eta must be a datetime or a POSIX timestamp, not {type(eta).__name__}")


class Task(Generic[R]):
    """A function that can run now (``task(...)``) or later (``task.delay(...)``)."""

    def __init__(self, fn: Callable[..., R], *, app: Nuvom | None = None, **options: Any) -> None:
        #: the app this task belongs to (``@app.task``); None for a module-level ``@task``,
        #: which uses the current app (``use_app`` / the default) when it is called
        self.app = app
        extra = {k: options.pop(k) for k in list(options) if k not in TASK_OPTIONS}
        #: options declared by plugins (``rate_limit=...``), validated; copied onto every job
        self.plugin_options: dict[str, Any] = _plugin_options(extra, "@task", app) if extra else {}
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name: str = options.pop("name", None) or fn.__name__
        if not self.name or len(self.name) > 200 or any(ord(c) < 32 for c in self.name):
            raise ValueError(f"task name {self.name!r} is invalid: use 1-200 printable characters")
        self.module = getattr(fn, "__module__", "?")
        self.qualname = getattr(fn, "__qualname__", self.name)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.retries: int | None = options.get("retries")
        self.retry_delay_secs: float | None = options.get("retry_delay_secs")
        self.backoff: str = options.get("backoff", "fixed")
        self.backoff_max_secs: float = float(options.get("backoff_max_secs", 3600.0))
        self.jitter: bool = bool(options.get("jitter", True))
        retry_on = options.get("retry_on")
        self.retry_on: tuple[type[BaseException], ...] | None = (
            tuple(retry_on) if isinstance(retry_on, (list, tuple)) else (retry_on,) if retry_on else None
        )
        self.timeout_secs: float | None = options.get("timeout_secs")
        self.timeout_policy: str | None = options.get("timeout_policy")
        self.store_result: bool = bool(options.get("store_result", True))
        self.priority: int = int(options.get("priority", 0))
        self.queue: str = options.get("queue", "default")
        tags = options.get("tags", [])
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, Iterable) or not all(isinstance(t, str) for t in tags):
            raise TypeError("tags must be a string or a list of strings")
        self.tags: list[str] = list(tags)
        self.description: str = options.get("description") or (inspect.getdoc(fn) or "").split("\n")[0]
        self.category: str = options.get("category", "default")
        self.before_job: Callable[..., Any] | None = options.get("before_job")
        self.after_job: Callable[..., Any] | None = options.get("after_job")
        self.on_error: Callable[..., Any] | None = options.get("on_error")
        self.unique: bool = bool(options.get("unique", False))
        self.executor: str | None = options.get("executor")
        self.max_lease_expiries: int | None = options.get("max_lease_expiries")
        self._validate()
        if self.name.startswith("test_"):
            warnings.warn(f"task {self.name!r} starts with 'test_'; pytest may collect it as a test", stacklevel=3)
        (app.tasks if app is not None else registry).add(self)

    def _validate(self) -> None:
        if self.backoff not in ("fixed", "exponential"):
            raise ValueError(f"backoff={self.backoff!r} is invalid: use 'fixed' or 'exponential'")
        if self.timeout_policy not in (None, "retry", "fail", "ignore"):
            raise ValueError(f"timeout_policy={self.timeout_policy!r} is invalid: use 'retry', 'fail' or 'ignore'")
        if self.retries is not None and (not isinstance(self.retries, int) or self.retries < 0):
            raise ValueError(f"retries={self.retries!r} is invalid: use an integer >= 0")
        if self.max_lease_expiries is not None and (
                not isinstance(self.max_lease_expiries, int) or not 0 <= self.max_lease_expiries <= 1000):
            raise ValueError(f"max_lease_expiries={self.max_lease_expiries!r} is invalid: use an integer from 0 to 1000")
        if self.retry_delay_secs is not None and self.retry_delay_secs < 0:
            raise ValueError(f"retry_delay_secs={self.retry_delay_secs!r} is invalid: use a number >= 0")
        if self.timeout_secs is not None and self.timeout_secs <= 0:
            raise ValueError(f"timeout_secs={self.timeout_secs!r} is invalid: use a number > 0, or None for no timeout")
        validate_id(self.queue, "queue name")

    def __repr__(self) -> str:
        return f"<Task {self.name} ({self.module}.{self.qualname})>"

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Run the function here and now, like a plain call."""
        return self.fn(*args, **kwargs)

    # -- enqueueing ------------------------------------------------------------

    def build_job(self, args: Sequence[Any], kwargs: dict[str, Any], app: Nuvom, **overrides: Any) -> Job:
        s = app.settings
        opts: dict[str, Any] = {k: v for k in TASK_OPTIONS if (v := getattr(self, k, _UNSET)) is not _UNSET}
        plugin_options = self.plugin_options
        if overrides:
            extra = {k: v for k, v in overrides.items() if k not in _KNOWN_OPTIONS}
            if extra:
                plugin_options = {**plugin_options, **_plugin_options(extra, ".options()", app)}
            opts.update({k: v for k, v in overrides.items() if k in TASK_OPTIONS})
        misplaced = [k for k in _SCHEDULE_OPTIONS if overrides.get(k) is not None]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} only apply to .schedule(), not to .delay()/.map()")
        eta = _to_timestamp(overrides.get("eta"))
        if overrides.get("countdown") is not None:
            if eta is not None:
                raise ValueError("pass eta= or countdown=, not both")
            eta = now() + float(overrides["countdown"])
        unique_key = overrides.get("unique_key")
        if unique_key is None and opts.get("unique"):
            unique_key = _default_unique_key(self.name, args, kwargs, app)
        if "timeout_secs" not in overrides and self.timeout_secs is None:
            del opts["timeout_secs"]  # not set on the task: the setting applies
        job = job_from_options(self.name, args, kwargs, opts, s, eta=eta, unique_key=unique_key)
        if plugin_options:
            job.options = dict(plugin_options)
        if overrides.get("job_id"):
            job.id = validate_id(overrides["job_id"])
        return job

    def delay(self, *args: Any, **kwargs: Any) -> JobHandle[R]:
        """Enqueue one run with these arguments; returns a handle at once."""
        return _BoundCall(self, {}, self.app).delay(*args, **kwargs)

    submit = delay

    def map(self, arg_sequences: Iterable[Sequence[Any] | Any]) -> list[JobHandle[R]]:
        """Enqueue one job per element (a tuple of positional args, or one arg), in one batch."""
        return _BoundCall(self, {}, self.app).map(arg_sequences)

    def schedule(self, *args: Any, at: datetime | float | None = None, in_: timedelta | float | None = None,
                 interval: float | timedelta | None = None, cron: str | None = None,
                 timezone_name: str | None = "UTC", **kwargs: Any) -> Any:
        """Run later or repeatedly (Nuvom 0.11's call): exactly one of ``at=`` (a
        datetime), ``in_=`` (a timedelta), ``interval=`` (seconds) or ``cron=``
        (evaluated in ``timezone_name``); returns a handle with the schedule's ``id``."""
        return _BoundCall(self, {}, self.app).schedule(*args, at=at, in_=in_, interval=interval, cron=cron,
                                                       timezone_name=timezone_name, **kwargs)

    def options(self, *, app: Nuvom | None = None, **overrides: Any) -> _BoundCall[R]:
        """Per-call overrides: ``task.options(eta=..., priority=9, queue="high").delay(...)``."""
        return _BoundCall(self, overrides, app or self.app)


class _BoundCall(Generic[R]):
    def __init__(self, task: Task[R], overrides: dict[str, Any], app: Nuvom | None = None) -> None:
        self.task = task
        self.overrides = overrides
        self.app = app

    def _app(self) -> Nuvom:
        if self.app is not None:
            return self.app
        from nuvom_kernel.app import get_app

        return get_app()

    def delay(self, *args: Any, **kwargs: Any) -> JobHandle[R]:
        app = self._app()
        job = self.task.build_job(args, kwargs, app, **self.overrides)
        return JobHandle(app.enqueue(job).id, app)

    submit = delay

    def schedule(self, *args: Any, at: datetime | float | None = None, in_: timedelta | float | None = None,
                 interval: float | timedelta | None = None, cron: str | None = None,
                 timezone_name: str | None = "UTC", **kwargs: Any) -> Any:
        app = self._app()
        when = {"at": at, "in_": in_, "interval": interval, "cron": cron, "timezone_name": timezone_name}
        return app.plugins.schedule_task(app, self.task, args, kwargs, when, dict(self.overrides))

    def map(self, arg_sequences: Iterable[Sequence[Any] | Any]) -> list[JobHandle[R]]:
        app = self._app()
        jobs = []
        for item in arg_sequences:
            args = tuple(item) if isinstance(item, (list, tuple)) else (item,)
            jobs.append(self.task.build_job(args, {}, app, **self.overrides))
        return [JobHandle(j.id, app) for j in app.enqueue_many(jobs)]


def job_from_options(
    task_name: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    opts: dict[str, Any],
    settings: Any,
    *,
    eta: float | None = None,
    unique_key: str | None = None,
) -> Job:
    """The job for one call, its options resolved against the settings.

    An option missing from ``opts`` or ``None`` takes the setting's default
    (``NUVOM_MAX_RETRIES``, ``NUVOM_RETRY_DELAY_SECS``, ``NUVOM_TIMEOUT_POLICY``);
    ``timeout_secs`` present, even ``None`` (no limit), wins over
    ``NUVOM_JOB_TIMEOUT_SECS``.  Shared by ``Task.delay`` and enqueueing by name.
    """

    def pick(key: str, default: Any) -> Any:
        value = opts.get(key)
        return default if value is None else value

    tags = opts.get("tags") or []
    return Job(
        task=task_name,
        args=list(args),
        kwargs=dict(kwargs),
        queue=pick("queue", "default"),
        priority=int(pick("priority", 0)),
        eta=eta,
        max_retries=int(pick("retries", settings.max_retries)),
        max_lease_expiries=int(pick("max_lease_expiries", settings.max_lease_expiries)),
        retry_delay_secs=float(pick("retry_delay_secs", settings.retry_delay_secs)),
        backoff=pick("backoff", "fixed"),
        backoff_max_secs=float(pick("backoff_max_secs", 3600.0)),
        jitter=bool(pick("jitter", True)),
        timeout_secs=opts.get("timeout_secs", settings.job_timeout_secs),
        timeout_policy=pick("timeout_policy", settings.timeout_policy),
        store_result=bool(pick("store_result", True)),
        unique_key=unique_key,
        executor=opts.get("executor"),
        tags=[tags] if isinstance(tags, str) else list(tags),
    )


def _plugin_options(given: dict[str, Any], where: str, app: Nuvom | None = None) -> dict[str, Any]:
    """Validate options the kernel does not know against those plugins declared
    (the current app's plugins; loaded only when such an option is used)."""
    if app is None:
        from nuvom_kernel.app import get_app

        app = get_app()
    known = [*TASK_OPTIONS, *CALL_OPTIONS] if where != "@task" else list(TASK_OPTIONS)
    return validate_plugin_options(given, app.plugins.task_options(), known, where)


def _default_unique_key(name: str, args: Sequence[Any], kwargs: dict[str, Any], app: Nuvom) -> str:
    import hashlib

    digest = hashlib.blake2b(app.serializer.dumps([name, list(args), kwargs]), digest_size=16).hexdigest()
    return f"{name}:{digest}"


@overload
def task(fn: Callable[..., R], /) -> Task[R]: ...


@overload
def task(fn: None = None, /, **options: Any) -> Callable[[Callable[..., R]], Task[R]]: ...


def task(fn: Callable[..., R] | None = None, /, **options: Any) -> Task[R] | Callable[[Callable[..., R]], Task[R]]:
    """Make a function a Nuvom task: ``@task`` or ``@task(retries=3, timeout_secs=10)``.

    A module-level task is known to every app and enqueued into the current
    one when called (``use_app``, else the default app); ``@app.task``
    registers it with one app only.
    """
    if fn is not None:
        return Task(fn, **options)

    def decorate(f: Callable[..., R]) -> Task[R]:
        return Task(f, **options)

    return decorate


def get_task(name: str) -> Task[Any]:
    """The registered task called ``name`` (``TaskNotFoundError`` if none)."""
    return registry.get(name)
