"""The ``nuvom-scheduler`` plugin's hooks: settings, task options, the next
fire time, the loop inside every worker, and the commands."""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nuvom_kernel import hookimpl
from nuvom_kernel.schedules import Schedule
from nuvom_scheduler.api import ScheduleHandle, add_schedule, build_schedule
from nuvom_scheduler.loop import SchedulerLoop
from nuvom_scheduler.timing import Defaults, check_cron, next_fire
from nuvom_support.options import coerce_options

log = logging.getLogger("nuvom.scheduler")

SECTION = "scheduler"


class SchedulerOptions(BaseModel):
    """The scheduler's settings (section ``scheduler``: ``NUVOM_SCHEDULER__<KEY>``,
    ``[tool.nuvom.scheduler]``)."""

    model_config = ConfigDict(extra="forbid")

    in_workers: bool = Field(True, description="Every worker runs the scheduler loop too (`runworker --no-scheduler` opts out).")
    poll_secs: float = Field(1.0, gt=0, le=3600, allow_inf_nan=False, description="Seconds between passes over the due schedules (stores that cannot tell about schedule changes).")
    idle_secs: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False,
                             description="Stores that tell about schedule changes (PostgreSQL, Redis): the loop sleeps "
                             "until the next fire, at most this long.")
    batch: int = Field(100, ge=1, le=100_000, description="Schedules fired per pass at most.")
    jitter_secs: float = Field(0.0, ge=0, le=3600, allow_inf_nan=False,
                               description="Random extra wait (0..this) between passes, so replicas spread out.")
    misfire_grace_secs: float = Field(60.0, ge=0, allow_inf_nan=False,
                                      description="Default: how late an occurrence may still fire; later ones are skipped and counted.")
    coalesce: Literal["latest", "earliest", "all"] = Field(
        "latest", description="Default: several due occurrences become one job (latest, earliest) or one each (all).")
    catch_up_limit: int = Field(100, ge=1, le=100_000, description="Default: at most this many jobs for one catch-up with coalesce=all.")
    retention_secs: float | None = Field(
        30 * 86400.0, ge=0, le=100 * 365 * 86_400, allow_inf_nan=False,
        description="Done and cancelled schedules are deleted this long after they ended (by the scheduler loop); "
        "empty or 0 keeps them. Cancelled @task(cron=...) schedules are always kept.")

    @field_validator("retention_secs", mode="before")
    @classmethod
    def _empty_keeps(cls, value: Any) -> Any:
        return None if value in ("", 0, "0", None) else value

    def defaults(self) -> Defaults:
        return Defaults(misfire_grace_secs=self.misfire_grace_secs, coalesce=self.coalesce,
                        catch_up_limit=self.catch_up_limit)


def options_of(app: Any) -> SchedulerOptions:
    resolved = app.plugin_settings.get(SECTION)
    return coerce_options(SchedulerOptions, resolved.values if resolved is not None else {}, SECTION)


def make_loop(app: Any, *, poll: float | None = None, batch: int | None = None, jitter: float | None = None,
              **kwargs: Any) -> SchedulerLoop:
    """A loop configured from the app's ``scheduler`` settings (arguments win)."""
    opts = options_of(app)
    return SchedulerLoop(app, poll=opts.poll_secs if poll is None else poll,
                         batch=opts.batch if batch is None else batch,
                         jitter=opts.jitter_secs if jitter is None else jitter, defaults=opts.defaults(),
                         idle_secs=kwargs.pop("idle_secs", opts.idle_secs),
                         retention_secs=opts.retention_secs or None, **kwargs)


@hookimpl
def nuvom_register_settings(register: Any) -> None:
    register(SECTION, SchedulerOptions)


@hookimpl
def nuvom_register_task_options(register: Any) -> None:
    register("cron", str, description="Run this task periodically: a five-field cron expression (with timezone=).")
    register("interval", float, description="Run this task periodically: every this many seconds.")
    register("timezone", str, description="The IANA time zone of cron= (default UTC).")


@hookimpl
def nuvom_schedule_task(app: Any, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                        when: dict[str, Any], overrides: dict[str, Any]) -> ScheduleHandle:
    schedule = build_schedule(task, args, kwargs, overrides=overrides, **when)
    return ScheduleHandle(add_schedule(app, schedule), app)


@hookimpl
def nuvom_schedule_next_fire(schedule: Schedule, after: float) -> float | None:
    if schedule.kind == "cron" and schedule.cron:
        check_cron(schedule.cron)
    return next_fire(schedule, after)


_loops_lock = threading.Lock()
#: the loop each running worker of this process started, by worker id
_worker_loops: dict[str, SchedulerLoop] = {}


@hookimpl
def nuvom_startup(ctx: Any) -> None:
    app = getattr(ctx, "app", None)
    if ctx.role != "worker" or app is None:
        return
    if not options_of(app).in_workers:
        log.info("worker %s: scheduler loop off (in_workers is false)", ctx.worker_id)
        return
    if not app.provides("schedules"):
        log.info("worker %s: the %s backend stores no schedules; no scheduler loop", ctx.worker_id,
                 app.settings.queue_backend)
        return
    loop = make_loop(app, name=f"scheduler-{ctx.worker_id}", in_worker=True)
    with _loops_lock:
        _worker_loops[str(ctx.worker_id)] = loop
    loop.start()


@hookimpl
def nuvom_shutdown(ctx: Any) -> None:
    with _loops_lock:
        loop = _worker_loops.pop(str(ctx.worker_id), None)
    if loop is not None:
        loop.stop()


@hookimpl
def nuvom_register_commands(app: Any, cli: Any) -> None:
    from nuvom_scheduler.cli import register_commands

    register_commands(app, cli)
