"""Process-pool executor for Nuvom (component name ``process``)."""

from __future__ import annotations

from nuvom_executor_process.executor import ProcessExecutor
from nuvom_executor_process.options import ProcessOptions

__all__ = ["ProcessExecutor", "ProcessOptions"]
