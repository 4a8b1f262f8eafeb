"""Process-pool executor for Nuvom (component name ``process``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_executor_process.executor import ProcessExecutor
    from nuvom_executor_process.options import ProcessOptions

__all__ = ["ProcessExecutor", "ProcessOptions"]

__getattr__ = lazy_exports(__name__, {"ProcessExecutor": "executor", "ProcessOptions": "options"})
