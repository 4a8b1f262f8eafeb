"""Nuvom 0.11's import path: ``from nuvom.task import task`` keeps working."""

from __future__ import annotations

from nuvom_kernel.task import JobHandle, Task, get_task, registry, task

__all__ = ["JobHandle", "Task", "get_task", "registry", "task"]
