"""The typed facade over the hooks, mixed into
:class:`~nuvom_kernel.manager.NuvomPluginManager`: core code calls these
methods (``startup``, ``job_started``, ``execute_job`` ...), never ``pm.hook``
directly; each calls its hook through ``pm.hook`` and skips hooks no plugin
implements."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from nuvom_kernel import hookspecs
from nuvom_kernel.errors import CapabilityError

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.lifecycle import NuvomContext
    from nuvom_kernel.models import ErrorInfo, Job
    from nuvom_kernel.settings import NuvomSettings
    from nuvom_kernel.task import Task


class KernelHooks:
    """Typed hook calls; see the module docstring."""

    # set by NuvomPluginManager.__init__
    pm: pluggy.PluginManager
    loaded: bool
    plugin_options: dict[str, dict[str, Any]]
    _implemented: dict[str, bool]
    _call_errors: list[tuple[str, BaseException]] | None

    if TYPE_CHECKING:
        def load(self) -> Any: ...

    def _implements(self, hook_name: str) -> bool:
        """Whether any plugin implements ``hook_name`` (looked up once per hook)."""
        found = self._implemented.get(hook_name)
        if found is None:
            if not self.loaded:
                self.load()
            found = self._implemented[hook_name] = bool(getattr(self.pm.hook, hook_name).get_hookimpls())
        return found

    def _notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook; each implementation's failure is isolated."""
        if self._implements(hook_name):
            getattr(self.pm.hook, hook_name)(**kwargs)

    def wraps_execution(self) -> bool:
        """Whether some plugin wraps task execution (looked up once)."""
        found = self._implemented.get("<execution wrappers>")
        if found is None:
            if not self.loaded:
                self.load()
            found = self._implemented["<execution wrappers>"] = bool(self._execution_wrappers())
        return found

    def _execution_wrappers(self) -> list[Any]:
        """The wrappers of ``nuvom_execute_job``, outermost first (pluggy's order)."""
        return [impl for impl in reversed(self.pm.hook.nuvom_execute_job.get_hookimpls())
                if impl.wrapper or impl.hookwrapper]

    def execution_plugins(self) -> tuple[str, ...]:
        """Names of the plugins that wrap task execution (a process executor loads them in its children)."""
        if not self.wraps_execution():
            return ()
        return tuple(impl.plugin_name for impl in self._execution_wrappers())

    def execute_job(self, job: Job, task: Task[Any]) -> Any:
        """Call a sync task through the ``nuvom_execute_job`` wrappers."""
        return self.pm.hook.nuvom_execute_job(job=job, task=task)

    async def execute_job_async(self, job: Job, task: Task[Any], call: Callable[[], Awaitable[Any]]) -> Any:
        """Await an ``async def`` task inside the ``nuvom_execute_job`` wrappers.

        pluggy cannot await, so for coroutines the kernel drives the (guarded)
        wrapper generators itself, with pluggy's semantics: set-up outermost
        first, the awaited call, tear-down innermost first; a new-style wrapper
        receives the value or the exception, an old-style one a
        :class:`pluggy.Result`.
        """
        kwargs = {"job": job, "task": task}
        started: list[tuple[Any, Any]] = []
        for impl in self._execution_wrappers():
            gen = impl.function(*[kwargs[name] for name in impl.argnames])
            next(gen)  # guarded: a wrapper's own failure is logged there, never raised here
            started.append((impl, gen))
        value: Any = None
        error: BaseException | None = None
        try:
            value = await call()
        except BaseException as exc:
            error = exc
        for impl, gen in reversed(started):
            try:
                if impl.hookwrapper:
                    outcome = pluggy.Result(value, error)
                    gen.send(outcome)
                elif error is not None:
                    gen.throw(error)
                else:
                    gen.send(value)
            except StopIteration as stop:
                if impl.hookwrapper:
                    value, error = _unpack(outcome)
                else:
                    value, error = stop.value, None
            except BaseException as exc:
                error = exc
        if error is not None:
            raise error
        return value

    def configure(self, settings: NuvomSettings) -> None:
        self.load()
        self.pm.hook.nuvom_configure.call_historic(kwargs={"settings": settings})

    def startup(self, ctx: NuvomContext) -> None:
        ctx.options = self.plugin_options
        self._notify("nuvom_startup", ctx=ctx)

    def shutdown(self, ctx: NuvomContext) -> None:
        self._notify("nuvom_shutdown", ctx=ctx)

    def log_handler(self, app: Nuvom) -> logging.Handler | None:
        """The handler a plugin wants the ``nuvom`` command to log through, if any."""
        if not self._implements("nuvom_log_handler"):
            return None
        handler = self.pm.hook.nuvom_log_handler(app=app)
        return handler if isinstance(handler, logging.Handler) else None

    def _scheduler(self, hook_name: str) -> Any:
        if not self._implements(hook_name):
            raise CapabilityError(
                "schedules need the scheduler plugin: pip install nuvom-scheduler "
                "(`pip install nuvom` includes it), or enable it if .nuvom_plugins.toml disables it")
        return getattr(self.pm.hook, hook_name)

    def schedule_next_fire(self, schedule: Any, after: float) -> float | None:
        """The first occurrence of ``schedule`` after ``after`` (``nuvom_schedule_next_fire``);
        :class:`CapabilityError` when no plugin computes schedules."""
        found = self._scheduler("nuvom_schedule_next_fire")(schedule=schedule, after=after)
        return None if found is None else float(found)

    def schedule_task(self, app: Any, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                      when: dict[str, Any], overrides: dict[str, Any]) -> Any:
        """Store a schedule (``nuvom_schedule_task``); :class:`CapabilityError` without a scheduler."""
        return self._scheduler("nuvom_schedule_task")(app=app, task=task, args=args, kwargs=kwargs,
                                                      when=when, overrides=overrides)

    def job_enqueued(self, job: Job) -> None:
        self._notify("nuvom_job_enqueued", job=job)

    def job_started(self, job: Job) -> None:
        self._notify("nuvom_job_started", job=job)

    def job_finished(self, job: Job, record: Job) -> None:
        self._notify("nuvom_job_finished", job=job, record=record)

    def job_retrying(self, job: Job, error: ErrorInfo | None, delay: float) -> None:
        self._notify("nuvom_job_retrying", job=job, error=error, delay=delay)

    def job_dead(self, job: Job, reason: str) -> None:
        self._notify("nuvom_job_dead", job=job, reason=reason)

    def leases_expired(self, worker_id: str, count: int) -> None:
        self._notify("nuvom_leases_expired", worker_id=worker_id, count=count)

    def schedule_fired(self, schedule: Any, jobs: list[Job], missed: int, coalesced: int) -> None:
        self._notify("nuvom_schedule_fired", schedule=schedule, jobs=jobs, missed=missed, coalesced=coalesced)

    def register_commands(self, app: Any, on_error: Callable[[str, BaseException], None] | None = None,
                          cli: Any = None) -> None:
        """Let every plugin add its commands (``cli``: the CLI's
        :class:`~nuvom_kernel.components.CommandContext`); a failing plugin is reported, not fatal."""
        self.load()
        errors: list[tuple[str, BaseException]] = []
        self._call_errors = errors
        try:
            self.pm.hook.nuvom_register_commands(app=app, cli=cli)
        finally:
            self._call_errors = None
        if on_error is not None:
            for name, exc in errors:
                on_error(name, exc)

    def hook_names(self) -> Iterable[str]:
        return [n for n in dir(hookspecs) if n.startswith("nuvom_")]


def _unpack(outcome: pluggy.Result[Any]) -> tuple[Any, BaseException | None]:
    try:
        return outcome.get_result(), None
    except BaseException as exc:
        return None, exc
