"""Registers the ``process`` executor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nuvom_kernel import hookimpl
from nuvom_kernel.hookspecs import Register

if TYPE_CHECKING:  # imported when an executor is made, not when the plugin loads
    from nuvom_executor_process.executor import ProcessExecutor


def make_executor(settings: Any, options: dict[str, Any]) -> ProcessExecutor:
    """``options``: the ``[plugins.settings.nuvom-executor-process]`` table."""
    from nuvom_executor_process.executor import ProcessExecutor
    from nuvom_executor_process.options import ProcessOptions

    root = getattr(settings, "project_root", None) or Path.cwd()
    return ProcessExecutor(ProcessOptions.from_mapping(options), root=root)


@hookimpl
def nuvom_register_executors(register: Register) -> None:
    register("process", make_executor,
             description="spawned child processes reused across jobs; hard timeouts; recycling")
