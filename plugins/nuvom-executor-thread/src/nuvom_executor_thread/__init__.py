"""Thread-pool executor for Nuvom (component name ``thread``)."""

from __future__ import annotations

from nuvom_executor_thread.executor import ThreadExecutor

__all__ = ["ThreadExecutor"]
