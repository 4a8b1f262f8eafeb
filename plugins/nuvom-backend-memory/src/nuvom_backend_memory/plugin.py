"""Registers the ``memory`` queue and result backend."""

from __future__ import annotations

import threading
from typing import Any

from nuvom_backend_memory.backend import MemoryBackend
from nuvom_kernel import hookimpl
from nuvom_kernel.hookspecs import Register

_instances: dict[tuple[str, str], MemoryBackend] = {}
_lock = threading.Lock()


def make_backend(settings: Any, options: dict[str, Any]) -> MemoryBackend:
    """One store per process, project root and ``instance`` option: every app
    of one project in the process (producer and worker) sees the same jobs,
    and another project root starts empty."""
    key = (str(settings.resolve_path(".").resolve()), str(options.get("instance", "default")))
    with _lock:
        if key not in _instances:
            _instances[key] = MemoryBackend()
        return _instances[key]


@hookimpl
def nuvom_register_queue_backends(register: Register) -> None:
    register("memory", make_backend, description="in-process dict; fast, not durable, one process only")


@hookimpl
def nuvom_register_result_backends(register: Register) -> None:
    register("memory", make_backend, description="in-process dict; lost when the process exits")
