"""Registers the ``memory`` store (queue, job store, results, worker registry).

A memory store's data is the process's memory, so the data is shared by every
app of one project root (and ``instance`` option) in the process: a producer
app and a worker app see the same jobs.  The backend object holds no other
resource and ``close()`` releases nothing, so closing one app never affects
another.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from nuvom_kernel import hookimpl

if TYPE_CHECKING:  # the implementation is imported when a backend is made, not when the plugin loads
    from nuvom_backend_memory.backend import MemoryBackend

_instances: dict[tuple[str, str], MemoryBackend] = {}
_lock = threading.Lock()


def make_backend(settings: Any, options: dict[str, Any]) -> MemoryBackend:
    """One store per process, project root and ``instance`` option: every app
    of one project in the process (producer and worker) sees the same jobs,
    and another project root starts empty."""
    from nuvom_backend_memory.backend import MemoryBackend

    key = (str(settings.resolve_path(".").resolve()), str(options.get("instance", "default")))
    with _lock:
        if key not in _instances:
            _instances[key] = MemoryBackend()
        return _instances[key]


@hookimpl
def nuvom_register_storage(register: Any) -> None:
    register("memory", make_backend, roles=("queue", "jobs", "results", "workers", "schedules"),
             description="in-process dict; fast, not durable, one process only")
