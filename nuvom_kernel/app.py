"""The ``Nuvom`` application object: settings + plugins + selected components.

Everything that needs a backend goes through one of these.  The one-liner API
(``task.delay()``, ``nuvom.sdk``) uses a lazily created default app; tests and
embedders create their own and pass it (or install it with :func:`use_app`).

Constructing an app never touches logging: the library logs to ``nuvom.*``
loggers and leaves handlers and levels to the host application; only the
``nuvom`` command configures logging (``nuvom_cli.state.apply_log_level``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nuvom_kernel.context import current_app
from nuvom_kernel.contracts import (
    JobFilter,
    JobPage,
    JobStore,
    QueueBackend,
    ResultBackend,
    ScheduleStore,
    Serializer,
    WorkerRegistry,
    capabilities_of,
)
from nuvom_kernel.errors import (
    CapabilityError,
    InvalidStateError,
    JobNotFoundError,
    StoreError,
)
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.models import RETRYABLE_STATES, Job, JobState, validate_id
from nuvom_kernel.payloads import PayloadCodec
from nuvom_kernel.plugin_settings import PluginSettings
from nuvom_kernel.plugin_settings import resolve as resolve_plugin_settings
from nuvom_kernel.settings import (
    LoadedSettings,
    NuvomSettings,
    load_settings,
    project_root,
    read_dotenv,
)
from nuvom_kernel.storefaults import store_error
from nuvom_kernel.task import TaskRegistry, registry
from nuvom_kernel.task import task as make_task


class Nuvom(PayloadCodec):
    """Settings, plugin manager and the selected queue/result backends."""

    def __init__(
        self,
        settings: NuvomSettings | None = None,
        *,
        root: str | Path | None = None,
        plugins: NuvomPluginManager | None = None,
        environ: dict[str, str] | None = None,
        queue: QueueBackend | None = None,
        results: ResultBackend | None = None,
        serializer: Serializer | None = None,
        **overrides: Any,
    ) -> None:
        """``settings`` (or the environment, ``.env`` and ``pyproject.toml`` of
        ``root``, with ``overrides`` on top); ``queue``/``results``/``serializer``
        inject ready components instead of creating the configured ones (tests,
        embedding)."""
        if settings is None:
            env = dict(os.environ if environ is None else environ)
            root_path = Path(root).resolve() if root is not None else project_root(env)
            plugins = plugins or NuvomPluginManager(root_path, environ=environ)
            self.loaded: LoadedSettings = load_settings(root_path, environ=environ, overrides=overrides or None,
                                                        plugins=plugins)
            settings = self.loaded.settings
            self._plugin_settings: dict[str, PluginSettings] | None = self.loaded.plugins
        else:
            self._plugin_settings = None
            if overrides:
                settings = settings.model_copy(update=overrides)
            root_path = Path(root or settings.project_root or Path.cwd()).resolve()
            if settings.project_root is None:
                settings = settings.model_copy(update={"project_root": str(root_path)})
            self.loaded = LoadedSettings(settings=settings, root=root_path)
        self.settings = settings
        self.root = self.loaded.root
        self.environ = environ
        self.plugins = plugins or NuvomPluginManager(self.root, environ=environ)
        self._lock = threading.RLock()
        self._queue: QueueBackend | None = queue
        self._results: ResultBackend | None = results
        if queue is not None and results is None and isinstance(queue, ResultBackend):
            self._results = queue
        self._serializer: Serializer | None = serializer
        self._decoders: dict[str, Serializer] = {}
        self._caps: tuple[Any, frozenset[str]] | None = None  # the queue object and its roles
        self._configured = False
        #: this app's tasks (``@app.task``); module-level ``@task`` tasks are found through its parent
        self.tasks = TaskRegistry(parent=registry)

    def task(self, fn: Any = None, /, **options: Any) -> Any:
        """``@app.task`` / ``@app.task(retries=3)``: a task registered with this app only,
        enqueued into it by ``.delay()`` whatever app is current."""
        return make_task(fn, app=self, **options)

    # -- plugin settings -------------------------------------------------------

    @property
    def plugin_settings(self) -> dict[str, PluginSettings]:
        """Every plugin's validated options by section (``nuvom config`` shows them)."""
        if self._plugin_settings is None:
            env = dict(os.environ if self.environ is None else self.environ)
            self._plugin_settings = resolve_plugin_settings(
                self.plugins.settings_declarations(), self.root, env, read_dotenv(self.root / ".env"),
                self.plugins.plugin_options)
        return self._plugin_settings

    @property
    def component_options(self) -> dict[str, Any]:
        """What each plugin's factories receive as ``options``: its validated
        settings model, or its ``.nuvom_plugins.toml`` table if it declared none."""
        options: dict[str, Any] = dict(self.plugins.plugin_options)
        for resolved in self.plugin_settings.values():
            options[resolved.declaration.plugin] = resolved.values
        return options

    # -- components ------------------------------------------------------------

    def _ensure_configured(self) -> None:
        if not self._configured:
            self._configured = True
            self.plugins.configure(self.settings)

    @property
    def queue(self) -> QueueBackend:
        with self._lock:
            if self._queue is None:
                self._ensure_configured()
                reg = self.plugins.registries
                self._queue = reg["queue_backends"].create(
                    self.settings.queue_backend, self.settings, self.component_options,
                    self.loaded.sources.get("queue_backend"),
                )
            return self._queue

    @property
    def results(self) -> ResultBackend:
        """The result backend; the queue object itself when both roles share storage."""
        with self._lock:
            if self._results is None:
                reg = self.plugins.registries
                queue = self.queue
                same = (
                    self.settings.result_backend == self.settings.queue_backend
                    and isinstance(queue, ResultBackend)
                    and self.settings.result_backend in reg["result_backends"]
                    and reg["result_backends"].get(self.settings.result_backend).plugin
                    == reg["queue_backends"].get(self.settings.queue_backend).plugin
                )
                if same:
                    self._results = queue  # type: ignore[assignment]
                else:
                    self._results = reg["result_backends"].create(
                        self.settings.result_backend, self.settings, self.component_options,
                        self.loaded.sources.get("result_backend"),
                    )
            assert self._results is not None
            return self._results

    def _roles(self) -> frozenset[str]:
        """The roles the queue backend's object provides (looked up once per object)."""
        queue = self.queue
        if self._caps is None or self._caps[0] is not queue:
            self._caps = (queue, capabilities_of(queue))
        return self._caps[1]

    def _role(self, capability: str, what: str) -> Any:
        roles = self._roles()
        if capability in roles:
            return self.queue
        raise CapabilityError(
            f"the {self.settings.queue_backend!r} queue backend provides no {what} "
            f"(it declares: {', '.join(sorted(roles)) or 'nothing'}); "
            "use a backend that does (memory, file, sqlite) or a plugin that adds the role"
        )

    def provides(self, capability: str) -> bool:
        """True if the queue backend provides ``capability`` (see ``CAPABILITIES``)."""
        return capability in self._roles()

    @property
    def jobs(self) -> JobStore:
        """The job store (get, list, counts, cancel, retry, purge, progress); the
        queue backend's object when it provides the role, else ``CapabilityError``."""
        return self._role("jobs", "job store (needed to read, list, cancel or retry jobs)")

    @property
    def workers(self) -> WorkerRegistry:
        """The worker registry; ``CapabilityError`` when the queue backend has none."""
        return self._role("workers", "worker registry (needed to list workers)")

    @property
    def schedules(self) -> ScheduleStore:
        """The schedule store; ``CapabilityError`` when the queue backend has none."""
        return self._role("schedules", "schedule store (needed by task.schedule() and the scheduler)")

    @property
    def shares_storage(self) -> bool:
        """True when finishing a job also stores its result (one object, both roles)."""
        return self.results is self.queue  # type: ignore[comparison-overlap]

    @property
    def serializer(self) -> Serializer:
        with self._lock:
            if self._serializer is None:
                self._serializer = self.plugins.registries["serializers"].create(
                    self.settings.serialization_backend, self.settings, self.component_options,
                    self.loaded.sources.get("serialization_backend"),
                )
            return self._serializer

    def create_executor(self, name: str | None = None) -> Any:
        self._ensure_configured()
        return self.plugins.registries["executors"].create(
            name or self.settings.executor, self.settings, self.component_options,
            "an argument" if name and name != self.settings.executor else self.loaded.sources.get("executor"),
        )

    def create_discoverer(self, name: str = "ast") -> Any:
        self._ensure_configured()
        return self.plugins.registries["discoverers"].create(name, self.settings, self.component_options)

    def close(self) -> None:
        with self._lock:
            seen: list[Any] = []
            for comp in (self._queue, self._results):
                if comp is not None and not any(comp is s for s in seen):
                    seen.append(comp)
                    comp.close()
            self._queue = self._results = None

    # -- jobs --------------------------------------------------------------------

    def enqueue(self, job: Job) -> Job:
        job = self._stored_call(job)
        try:
            stored = self.queue.enqueue(job)
        except StoreError:
            raise
        except OSError as exc:  # a backend's raw fault: full disk, permissions (one line, catchable)
            raise store_error(exc) from exc
        if stored.id == job.id:
            self.plugins.job_enqueued(stored)
        return stored

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        jobs = [self._stored_call(job) for job in jobs]
        try:
            stored = self.queue.enqueue_many(list(jobs))
        except StoreError:
            raise
        except OSError as exc:
            raise store_error(exc) from exc
        for original, job in zip(jobs, stored):
            if original.id == job.id:
                self.plugins.job_enqueued(job)
        return stored

    def get_job(self, job_id: str) -> Job:
        validate_id(job_id)
        job = self.jobs.get(job_id)
        if job is not None and job.is_terminal() and not self.shares_storage and job.store_result:
            stored = self.results.get_result(job_id)
            if stored is not None:
                job = stored
        if job is None and not self.shares_storage:
            job = self.results.get_result(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r} in the {self.settings.queue_backend} backend")
        return job

    def cancel_job(self, job_id: str, reason: str = "cancelled by request") -> Job:
        job = self.get_job(job_id)
        if job.is_terminal():
            raise InvalidStateError(f"job {job_id} is already {job.state}; only queued, scheduled or running jobs can be cancelled")
        updated = self.jobs.cancel(job_id, reason)
        if updated is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return updated

    def retry_job(self, job_id: str) -> Job:
        job = self.get_job(job_id)
        if job.state not in RETRYABLE_STATES:
            raise InvalidStateError(
                f"job {job_id} is {job.state}; only failed, dead or cancelled jobs can be retried"
                + (" (it will run, or is running, already)" if not job.is_terminal() else
                   " (it succeeded; enqueue a new job to run it again)")
            )
        updated = self.jobs.retry(job_id)
        if updated is None:
            if job.unique_key:
                raise InvalidStateError(
                    f"job {job_id} was not retried: another live job holds its unique key {job.unique_key!r}; "
                    "wait for that job to finish or cancel it")
            raise InvalidStateError(f"job {job_id} changed state while retrying; look at it again")
        self.plugins.job_enqueued(updated)
        return updated

    def list_jobs(
        self,
        *,
        states: Iterable[JobState | str] | None = None,
        task: str | None = None,
        queue: str | None = None,
        since: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs newest first; ``offset`` (0.11's paging) walks keyset pages, so
        prefer :meth:`query_jobs` and its cursor for deep pages."""
        parsed = frozenset(JobState(s) for s in states) if states else None
        wanted = JobFilter(states=parsed, task=task, queue=queue, since=since)
        cursor: str | None = None
        skip = max(0, offset)
        while skip:
            page = self.query_jobs(wanted, limit=min(skip, 1000), cursor=cursor)
            skip -= len(page.jobs)
            cursor = page.cursor
            if cursor is None:
                return []
        return self.query_jobs(wanted, limit=limit, cursor=cursor).jobs

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50, cursor: str | None = None) -> JobPage:
        """One page of jobs, newest first, from the job store (keyset cursor)."""
        return self.jobs.query_jobs(filter, limit=limit, cursor=cursor)


_default_lock = threading.Lock()
_default_app: Nuvom | None = None


def get_app() -> Nuvom:
    """The app used by ``task.delay()`` and ``nuvom.sdk`` when none is passed: the
    one installed with :func:`use_app` in this thread or task (a context
    variable, so other threads are not affected), else the lazily created
    default app (configured from the environment)."""
    global _default_app
    app = current_app.get()
    if app is not None:
        return app  # type: ignore[no-any-return]
    with _default_lock:
        if _default_app is None:
            _default_app = Nuvom()
        return _default_app


@contextlib.contextmanager
def use_app(app: Nuvom) -> Iterator[Nuvom]:
    """Make ``app`` the current app inside the ``with`` block, in this thread (or
    asyncio task) only; a worker makes its app current while it runs a task."""
    token = current_app.set(app)
    try:
        yield app
    finally:
        current_app.reset(token)


def set_default_app(app: Nuvom | None) -> None:
    """Replace the lazily created default app (``None`` drops it)."""
    global _default_app
    with _default_lock:
        _default_app = app
