"""Registers the ``sqlite`` queue and result backends.

Both factories return the same object for the same database file within a
process, so the kernel sees ``queue is results`` and finishing a job stores
its result in the same transaction.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from nuvom_backend_sqlite.backend import SqliteBackend
from nuvom_kernel import hookimpl
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.settings import NuvomSettings

_DESCRIPTION = "One SQLite file (WAL) for queue and results; several worker processes on one host."
_OPTIONS = {"path", "synchronous", "busy_timeout_secs"}

_lock = threading.Lock()
_open: dict[tuple[int, str, str], SqliteBackend] = {}


def _forget(backend: SqliteBackend) -> None:
    with _lock:
        for key, value in list(_open.items()):
            if value is backend:
                del _open[key]


def make_backend(settings: NuvomSettings, options: dict[str, Any]) -> SqliteBackend:
    """The backend for ``settings.sqlite_db_path`` (or ``options["path"]``),
    shared per resolved path within this process."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(sorted(unknown))} for nuvom-backend-sqlite; "
            f"allowed: {', '.join(sorted(_OPTIONS))}"
        )
    raw = str(options.get("path") or settings.sqlite_db_path)
    path = settings.resolve_path(raw).resolve()
    synchronous = str(options.get("synchronous") or settings.sqlite_synchronous).upper()
    busy = float(options.get("busy_timeout_secs", 30.0))
    key = (os.getpid(), str(path), synchronous)
    with _lock:
        backend = _open.get(key)
        if backend is None:
            backend = SqliteBackend(path, synchronous=synchronous, busy_timeout_secs=busy, on_close=_forget)
            _open[key] = backend
        return backend


@hookimpl
def nuvom_register_queue_backends(register: Any) -> None:
    register("sqlite", make_backend, description=_DESCRIPTION)


@hookimpl
def nuvom_register_result_backends(register: Any) -> None:
    register("sqlite", make_backend, description=_DESCRIPTION)
