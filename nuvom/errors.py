"""Every error Nuvom raises on purpose (re-exported from the kernel)."""

from __future__ import annotations

from nuvom_kernel.errors import (
    ComponentNotFoundError,
    ConfigError,
    CorruptJobError,
    DuplicateComponentError,
    InvalidIdError,
    InvalidStateError,
    JobCancelledError,
    JobDeadError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    NuvomError,
    PayloadError,
    PluginError,
    Retry,
    ScheduleNotFoundError,
    StoreAccessError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreReplacedError,
    TaskNotFoundError,
)
from nuvom_support.files import UntrustedFileError

__all__ = [
    "ComponentNotFoundError", "ConfigError", "CorruptJobError", "DuplicateComponentError", "InvalidIdError",
    "InvalidStateError", "JobCancelledError", "JobDeadError", "JobFailedError", "JobNotFoundError",
    "JobTimeoutError", "NuvomError", "PayloadError", "PluginError", "Retry", "ScheduleNotFoundError", "StoreAccessError", "StoreCorruptError",
    "StoreError", "StoreFullError", "StoreReplacedError", "TaskNotFoundError", "UntrustedFileError",
]
