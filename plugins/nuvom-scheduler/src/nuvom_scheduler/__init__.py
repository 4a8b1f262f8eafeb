"""Nuvom's scheduler: fires ``task.schedule(...)`` and ``@task(cron=...)``
schedules from every worker (or ``nuvom runscheduler``), each occurrence
exactly once however many schedulers run; ``nuvom schedules ...`` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_scheduler.loop import SchedulerLoop
    from nuvom_scheduler.timing import Defaults, next_fire, plan_fire

__all__ = ["Defaults", "SchedulerLoop", "next_fire", "plan_fire"]

__getattr__ = lazy_exports(__name__, {"SchedulerLoop": "loop", "Defaults": "timing", "next_fire": "timing", "plan_fire": "timing"})
