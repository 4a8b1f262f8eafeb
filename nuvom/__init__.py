"""Nuvom: background jobs for Python with no broker.

    from nuvom import task

    @task(retries=2, timeout_secs=30)
    def send_email(to: str) -> str: ...

    send_email.delay("a@example.com")   # then: nuvom runworker
"""

from __future__ import annotations

from nuvom_kernel import PLUGIN_API_VERSION, __version__, hookimpl
from nuvom_kernel.app import Nuvom, get_app, set_default_app, use_app
from nuvom_kernel.context import JobContext, current_job
from nuvom_kernel.errors import (
    JobCancelledError,
    JobDeadError,
    JobFailedError,
    JobTimeoutError,
    NuvomError,
    Retry,
)
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.settings import NuvomSettings
from nuvom_kernel.task import JobHandle, Task, get_task, task
from nuvom_kernel.worker import Worker
from nuvom_support.legacy import get_logger, get_settings  # Nuvom 0.11's exports

__all__ = [
    "PLUGIN_API_VERSION",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobDeadError",
    "JobFailedError",
    "JobHandle",
    "JobState",
    "JobTimeoutError",
    "Nuvom",
    "NuvomError",
    "NuvomSettings",
    "Retry",
    "Task",
    "Worker",
    "__version__",
    "current_job",
    "get_app",
    "get_logger",
    "get_settings",
    "get_task",
    "hookimpl",
    "set_default_app",
    "task",
    "use_app",
]
