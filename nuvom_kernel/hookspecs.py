"""Every hook a Nuvom plugin can implement.  The docstrings are the contract.

A plugin is a module (or object) with functions decorated by
``nuvom_kernel.hookimpl`` (also importable as ``nuvom.hookimpl``) whose names
match these specs exactly; a misspelled name fails loading with an error.

Registration hooks receive ``register(name, factory, description=None)``.
``factory(settings, options)`` builds the component when it is selected;
``settings`` is the effective :class:`~nuvom_kernel.settings.NuvomSettings`,
``options`` the plugin's validated settings model (``nuvom_register_settings``)
or, if it declares none, its ``[plugins.settings.<plugin>]`` table (a dict).

Every hook is called through pluggy (``pm.hook``): implementations may take
any subset of the arguments, and ``wrapper=True`` / ``hookwrapper=True``
implementations wrap the others (docs/hooks.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping

    from pydantic import BaseModel

    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.components import CommandContext
    from nuvom_kernel.contracts import ComponentFactory
    from nuvom_kernel.lifecycle import NuvomContext
    from nuvom_kernel.models import ErrorInfo, Job
    from nuvom_kernel.schedules import Schedule
    from nuvom_kernel.settings import NuvomSettings
    from nuvom_kernel.task import Task

PROJECT_NAME = "nuvom"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    def __call__(self, name: str, factory: ComponentFactory, description: str | None = None) -> None: ...


class RegisterStorage(Protocol):
    def __call__(self, name: str, factory: ComponentFactory, *, roles: Iterable[str],
                 description: str | None = None) -> None: ...


# -- registration --------------------------------------------------------------

@hookspec
def nuvom_register_storage(register: RegisterStorage) -> None:
    """Register a storage backend: one factory for every role it serves.

    ``register("sqlite", factory, roles=("queue", "jobs", "results", "workers"),
    description="...")``.  ``roles`` are names from
    :data:`~nuvom_kernel.contracts.CAPABILITIES`; with ``"queue"`` the name
    becomes a queue backend (``NUVOM_QUEUE_BACKEND``), with ``"results"`` a
    result backend (``NUVOM_RESULT_BACKEND``).  Each app calls the factory
    once, when it first needs the store, uses that one object for every role
    the name is selected for (so finishing a job and storing its result is
    one operation) and closes it in ``Nuvom.close()``.  The factory must
    return a new object on each call: two apps on the same database or
    directory get independent objects, and closing one never affects the
    other.  A plugin keeps no process-wide cache of stores.
    """


@hookspec
def nuvom_register_queue_backends(register: Register) -> None:
    """Register queue backends (:class:`~nuvom_kernel.contracts.QueueBackend`).

    Prefer :func:`nuvom_register_storage`, which declares every role a store
    serves in one call; this hook and :func:`nuvom_register_result_backends`
    stay for plugins written against 1.0.

    Called once per plugin manager, the first time a component is looked up.
    ``register("sqlite", factory, description="...")``; a name already
    registered by another plugin is refused with an error naming both.
    """


@hookspec
def nuvom_register_result_backends(register: Register) -> None:
    """Register result backends (:class:`~nuvom_kernel.contracts.ResultBackend`).

    Called like :func:`nuvom_register_queue_backends`.  A plugin that offers
    the same storage for both registers the same name in both; the kernel then
    uses one object for both roles so that finishing a job and storing its
    result is one operation.
    """


@hookspec
def nuvom_register_executors(register: Register) -> None:
    """Register executors (:class:`~nuvom_kernel.contracts.Executor`), e.g. ``thread``.

    Called like :func:`nuvom_register_queue_backends`; the factory is called
    once per worker that selects the executor.
    """


@hookspec
def nuvom_register_discoverers(register: Register) -> None:
    """Register task discoverers (:class:`~nuvom_kernel.contracts.Discoverer`), e.g. ``ast``.

    Called like :func:`nuvom_register_queue_backends`.
    """


@hookspec
def nuvom_register_serializers(register: Register) -> None:
    """Register serializers (:class:`~nuvom_kernel.contracts.Serializer`), e.g. ``json``.

    Called like :func:`nuvom_register_queue_backends`.
    """


@hookspec
def nuvom_register_commands(app: Any, cli: CommandContext) -> None:
    """Add commands to the ``nuvom`` command line.

    ``app`` is the root ``typer.Typer``; call ``app.command()`` or
    ``app.add_typer()``.  ``cli`` (:class:`~nuvom_kernel.components.CommandContext`)
    is the invocation's context: ``cli.app()`` the Nuvom app, ``cli.console``,
    ``cli.fail(message, code)`` and ``cli.guard(exc)`` with the exit codes
    every command shares (``cli.EXIT_USAGE`` ...).  Called each time the CLI is
    built (once per ``nuvom`` invocation), after all plugins are loaded.  A
    plugin that raises here is reported and its commands are missing; the
    rest of the CLI works.
    """


class RegisterSettings(Protocol):
    def __call__(self, section: str, model: type[BaseModel], *,
                 env: Mapping[str, str | list[str]] | None = None) -> None: ...


@hookspec
def nuvom_register_settings(register: RegisterSettings) -> None:
    """Declare the plugin's options as a pydantic model (one per plugin).

    ``register("sqlite", SqliteOptions, env={"path": "NUVOM_SQLITE_DB_PATH"})``:
    ``section`` names the options everywhere (``NUVOM_SQLITE__PATH``,
    ``[tool.nuvom.sqlite]``, ``[plugins.settings.sqlite]``); ``env`` adds
    environment names per field (e.g. names from Nuvom 0.11).  The kernel
    layers, validates and shows them in ``nuvom config`` (docs/configuration.md);
    the plugin's component factories then receive the validated model
    instance as ``options``.  Called once per plugin manager.
    """


class RegisterTaskOption(Protocol):
    def __call__(self, name: str, annotation: Any = Any, *, description: str | None = None) -> None: ...


@hookspec
def nuvom_register_task_options(register: RegisterTaskOption) -> None:
    """Declare options that ``@task(...)`` and ``task.options(...)`` accept for this plugin.

    ``register("rate_limit", str, description="most runs per second, e.g. '10/s'")``:
    ``annotation`` is a type pydantic validates the value against (``Any``
    accepts every JSON value).  A name the kernel or another plugin already
    uses is refused.  The value is on ``task.plugin_options`` and on each
    job's ``options`` (stored with the job), for hooks to read; an option
    that no plugin declares still fails with a suggestion.  Called once per
    plugin manager, the first time a task uses an option the kernel does not
    know.
    """


@hookspec(firstresult=True)
def nuvom_log_handler(app: Nuvom) -> logging.Handler | None:
    """The handler the ``nuvom`` command puts on the ``nuvom`` logger instead of its text one.

    Called once per ``nuvom`` invocation, when the command builds its app
    (``app``: read your options from ``app.plugin_settings[section].values``),
    never when Nuvom is used as a library: a host application's logging is
    its own.  Return a ``logging.Handler`` (the first non-``None`` answer
    wins), or ``None`` to keep the default.  Records logged while plugins
    loaded are replayed through it.  An exception is logged and the default
    handler is used.
    """


@hookspec(firstresult=True)
def nuvom_adapt_plugin(obj: Any) -> Any | None:
    """Make a plugin of a loaded object that has no Nuvom hook implementations.

    Called while plugins load, once every plugin is loaded, for each entry
    point, ``.nuvom_plugins.toml`` spec or ``load_spec`` target that is a
    module or object without ``@hookimpl`` functions.  Return an object with
    hook implementations to register in its place (its ``name`` attribute,
    if any, names a plugin that is not an entry point), or ``None`` if
    ``obj`` is not yours; raise :class:`~nuvom_kernel.errors.PluginError` to
    refuse it with a reason (recorded for that plugin).  The first answer
    wins.  ``nuvom-compat-011`` (part of ``nuvom-kernel``) adapts Nuvom 0.11
    protocol plugins this way.
    """


# -- lifecycle -----------------------------------------------------------------

@hookspec(historic=True)
def nuvom_configure(settings: NuvomSettings) -> None:
    """The effective settings, once they are loaded.

    Historic: a plugin registered later still receives the call.  Read
    settings here; do not start threads or open connections (use
    :func:`nuvom_startup`).
    """


@hookspec
def nuvom_startup(ctx: NuvomContext) -> None:
    """A worker (``ctx.role == "worker"``) or another long-lived process is starting.

    ``ctx`` carries ``settings``, ``role``, ``worker_id`` (workers only), the
    plugin ``options`` and ``app`` (the worker's app: storage roles, validated
    plugin settings).  Start exporters or open connections here.  An
    exception is logged with the plugin's name and does not stop the worker.
    """


@hookspec
def nuvom_shutdown(ctx: NuvomContext) -> None:
    """The process started with :func:`nuvom_startup` is stopping; release resources.

    Called once, after running jobs have finished.  Exceptions are logged.
    """


@hookspec
def nuvom_job_enqueued(job: Job) -> None:
    """A job was stored by the queue backend (called in the producer's process).

    Observer hook: must not modify ``job``; exceptions are logged and ignored.
    """


@hookspec
def nuvom_job_started(job: Job) -> None:
    """A worker is about to run an attempt of ``job`` (``job.attempts`` counts it).

    Observer hook, called in the worker; exceptions are logged and ignored.
    It is called on the thread that hands the job to the executor (often an
    executor thread whose previous job just ended), so calls for different
    jobs may overlap: keep the implementation thread-safe and quick.
    """


@hookspec
def nuvom_job_finished(job: Job, record: Job) -> None:
    """An attempt ended and the backend accepted the outcome.

    ``job`` is the job as it was claimed; ``record`` is the job after the
    outcome (``record.state`` is ``succeeded``, ``failed``, ``cancelled``,
    ``dead``, or ``queued``/``scheduled`` for a retry).  Observer hook.
    """


@hookspec
def nuvom_job_retrying(job: Job, error: ErrorInfo | None, delay: float) -> None:
    """An attempt failed and the job will run again after ``delay`` seconds.

    Observer hook, called in the worker after the backend accepted the retry.
    """


@hookspec
def nuvom_job_dead(job: Job, reason: str) -> None:
    """``job`` was dead-lettered and will not run again unless an operator
    retries it (``reason`` says why: unknown task, undecodable payload,
    attempts exhausted by a dying worker).  Observer hook."""


@hookspec
def nuvom_leases_expired(worker_id: str, count: int) -> None:
    """This worker's sweeper found ``count`` jobs whose lease had expired (their
    worker died or hung) and returned them to the queue, or dead-lettered those
    past their lease-expiry budget.  Each expired lease is reported once, by
    the worker that swept it.  Observer hook, called in the worker."""


# -- execution -----------------------------------------------------------------

@hookspec(firstresult=True)
def nuvom_execute_job(job: Job, task: Task[Any]) -> Any:
    """Wraps one attempt's call of ``task`` for ``job``, where the task runs.

    Implement it as a wrapper, ``@hookimpl(wrapper=True)``: the code before
    ``yield`` runs just before the task (and its per-task ``before_job``
    hook), the code after it once the task returned or raised; ``yield``
    returns the task's value or raises its exception.  Return the value (or
    let the exception propagate).  It runs in the thread that runs a sync
    task, in the coroutine of an ``async def`` task (on its event loop), and
    in the child process of the process executor, which imports the plugins
    that implement this hook from their entry point or ``.nuvom_plugins.toml``.
    ``current_job()`` works inside.  A plain (non-wrapper) implementation is
    refused at load; an exception raised by the wrapper itself is logged and
    never changes the job's outcome.
    """


# -- schedules -----------------------------------------------------------------

@hookspec(firstresult=True)
def nuvom_schedule_task(app: Any, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                        when: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """Store a schedule for ``task`` called with ``args``/``kwargs``: what
    ``task.schedule(...)`` and ``task.options(...).schedule(...)`` do.

    ``when`` holds the call's ``at``, ``in_``, ``interval``, ``cron`` and
    ``timezone_name``; ``overrides`` the ``.options()`` given.  Returns a
    handle with the schedule's ``id`` and ``pause()``, ``resume()``,
    ``cancel()``.  The scheduler plugin (``nuvom-scheduler``) implements it;
    bad arguments raise ``ValueError``/``TypeError`` naming the fix, and reach
    the caller (the hook is not isolated).
    """


@hookspec(firstresult=True)
def nuvom_schedule_next_fire(schedule: Schedule, after: float) -> float | None:
    """The first occurrence of ``schedule`` strictly after ``after`` (a POSIX
    timestamp), or ``None`` when it has no more.

    The scheduler plugin (``nuvom-scheduler``) implements it: cron expressions
    in an IANA time zone, DST gaps and repeats.  ``task.schedule(...)`` calls
    it to compute a new schedule's first fire time, so an invalid cron
    expression or time zone raises ``ValueError`` here, naming the problem;
    such exceptions reach the caller (the hook is not isolated).
    """


@hookspec
def nuvom_schedule_fired(schedule: Schedule, jobs: list[Job], missed: int, coalesced: int) -> None:
    """A scheduler fired ``schedule``: the store's atomic fire enqueued ``jobs``
    (one per occurrence fired, possibly none) and advanced the schedule.

    ``missed`` occurrences were later than their grace period and skipped;
    ``coalesced`` were merged into another occurrence's job.  ``schedule``
    is the schedule as it was read before the fire.  Called once per fire,
    in the scheduler process that won it (racing schedulers never both do),
    after ``nuvom_job_enqueued`` for each job.  Observer hook.
    """


#: Hooks a plugin may implement only as a wrapper (the kernel makes the call itself).
WRAPPER_ONLY_HOOKS = ("nuvom_execute_job",)
REGISTRATION_HOOKS = {
    "nuvom_register_queue_backends": "queue_backends",
    "nuvom_register_result_backends": "result_backends",
    "nuvom_register_executors": "executors",
    "nuvom_register_discoverers": "discoverers",
    "nuvom_register_serializers": "serializers",
}
#: Registers into ``queue_backends`` and/or ``result_backends`` by declared roles.
STORAGE_HOOK = "nuvom_register_storage"
