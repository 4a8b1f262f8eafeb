"""Periodic tasks declared in code: ``@task(cron="0 * * * *")`` or ``@task(interval=60)``.

The options ``cron``, ``interval`` and ``timezone`` are declared by this
plugin (``nuvom_register_task_options``), so the AST discoverer records them
in the manifest like any literal option.  A scheduler stores one schedule per
such task, id ``periodic.<task name>``, from the tasks imported in its process
and from the discovery manifest (so ``nuvom runscheduler`` needs no import).
Many schedulers store the same definition: the store keeps one; a changed
definition replaces the stored one (a paused schedule stays paused).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from nuvom_kernel.models import ID_PATTERN
from nuvom_kernel.schedules import Schedule
from nuvom_scheduler.api import add_schedule, build_schedule

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom

log = logging.getLogger("nuvom.scheduler")

#: The task options a periodic declaration uses.
PERIODIC_OPTIONS = ("cron", "interval", "timezone")
_COPIED = ("retries", "retry_delay_secs", "backoff", "backoff_max_secs", "jitter", "timeout_secs",
           "timeout_policy", "store_result", "priority", "queue", "tags", "executor", "max_lease_expiries")


def periodic_schedule_id(task: str) -> str:
    """The id of the schedule a ``@task(cron=...)``/``interval=`` declares: stable across processes."""
    candidate = f"periodic.{task}"
    if ID_PATTERN.match(candidate):
        return candidate
    return "periodic." + hashlib.blake2b(task.encode(), digest_size=12).hexdigest()


def _when(options: dict[str, Any]) -> dict[str, Any] | None:
    cron, interval = options.get("cron"), options.get("interval")
    if cron is None and interval is None:
        return None
    return {"cron": cron, "interval": interval, "timezone_name": options.get("timezone") or "UTC"}


def declared(app: Nuvom) -> list[Schedule]:
    """The schedules the code declares: imported tasks first, then the manifest's."""
    found: dict[str, Schedule] = {}
    for name in app.tasks.names():
        task = app.tasks.find(name)
        when = _when(task.plugin_options) if task is not None else None
        if task is None or when is None:
            continue
        try:
            found[name] = build_schedule(task, (), {}, origin="code", schedule_id=periodic_schedule_id(name), **when)
        except ValueError as exc:
            log.error("periodic task %s: %s", name, exc)
    for info in _manifest_tasks(app):
        when = _when(info.options)
        if when is None or info.name in found:
            continue
        shim = _ManifestTask(info.name, info.options)
        try:
            found[info.name] = build_schedule(shim, (), {}, origin="code",  # type: ignore[arg-type]
                                              schedule_id=periodic_schedule_id(info.name), **when)
        except ValueError as exc:
            log.error("periodic task %s (%s:%s): %s", info.name, info.path, info.line, exc)
    return list(found.values())


def sync_periodic(app: Nuvom) -> int:
    """Store (or update) every declared periodic schedule; returns how many were declared."""
    schedules = declared(app)
    for schedule in schedules:
        try:
            add_schedule(app, schedule, replace=True)
        except ValueError as exc:
            log.error("periodic task %s: %s", schedule.task, exc)
    return len(schedules)


class _ManifestTask:
    """What :func:`build_schedule` reads of a task, from its manifest entry (not imported)."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.timeout_secs = options.get("timeout_secs")
        self.plugin_options = {k: v for k, v in options.items() if k in PERIODIC_OPTIONS}
        for key in _COPIED:
            setattr(self, key, options.get(key))


def _manifest_tasks(app: Nuvom) -> list[Any]:
    from nuvom_support.manifest import default_manifest_path, load_manifest

    try:
        manifest = load_manifest(default_manifest_path(app.settings, app.root), app.root)
    except Exception as exc:  # a damaged manifest: the imported tasks still count
        log.warning("could not read the discovery manifest for periodic tasks: %s", exc)
        return []
    return [] if manifest is None else list(manifest.tasks)
