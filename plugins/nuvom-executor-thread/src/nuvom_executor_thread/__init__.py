"""Thread-pool executor for Nuvom (component name ``thread``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_executor_thread.executor import ThreadExecutor

__all__ = ["ThreadExecutor"]

__getattr__ = lazy_exports(__name__, {"ThreadExecutor": "executor"})
