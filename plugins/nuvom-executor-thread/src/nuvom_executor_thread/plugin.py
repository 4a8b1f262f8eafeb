"""Registers the ``thread`` executor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuvom_kernel import hookimpl
from nuvom_kernel.hookspecs import Register

if TYPE_CHECKING:  # imported when an executor is made, not when the plugin loads
    from nuvom_executor_thread.executor import ThreadExecutor


def make_executor(settings: Any, options: dict[str, Any]) -> ThreadExecutor:
    from nuvom_executor_thread.executor import ThreadExecutor

    return ThreadExecutor()


@hookimpl
def nuvom_register_executors(register: Register) -> None:
    register("thread", make_executor, description="thread pool; soft timeouts; async tasks on one event loop")
