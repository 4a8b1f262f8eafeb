"""Registers the ``sqlite`` queue and result backends.

Both factories return the same object for the same database file within a
process, so the kernel sees ``queue is results`` and finishing a job stores
its result in the same transaction.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nuvom_backend_sqlite.backend import SqliteBackend
from nuvom_kernel import hookimpl
from nuvom_kernel.plugin_settings import coerce_options
from nuvom_kernel.settings import NuvomSettings

_DESCRIPTION = "One SQLite file (WAL) for queue and results; several worker processes on one host."


class SqliteOptions(BaseModel):
    """The SQLite backend's settings (section ``sqlite``: ``NUVOM_SQLITE__PATH``,
    ``[tool.nuvom.sqlite]``; Nuvom 0.11's ``NUVOM_SQLITE_DB_PATH`` and
    ``NUVOM_SQLITE_SYNCHRONOUS`` work too)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(".nuvom/result.db", min_length=1,
                      description="SQLite database holding queue and results; relative to the project root.")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="Durability: NORMAL survives process crashes, FULL also power cuts.")
    busy_timeout_secs: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False,
                                     description="How long a write waits for another process's lock.")

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


ENV_NAMES = {"path": "NUVOM_SQLITE_DB_PATH", "synchronous": "NUVOM_SQLITE_SYNCHRONOUS"}


def options_model(options: SqliteOptions | dict[str, Any]) -> SqliteOptions:
    """``options`` as the kernel passes them (validated), or a plain table (``nuvom plugin test --option``)."""
    return coerce_options(SqliteOptions, options, "sqlite")


_lock = threading.Lock()
_open: dict[tuple[int, str, str], SqliteBackend] = {}


def _forget(backend: SqliteBackend) -> None:
    with _lock:
        for key, value in list(_open.items()):
            if value is backend:
                del _open[key]


def make_backend(settings: NuvomSettings, options: SqliteOptions | dict[str, Any]) -> SqliteBackend:
    """The backend for the configured database file, shared per resolved path within this process."""
    opts = options_model(options)
    path = settings.resolve_path(opts.path).resolve()
    synchronous, busy = opts.synchronous, opts.busy_timeout_secs
    key = (os.getpid(), str(path), synchronous)
    with _lock:
        backend = _open.get(key)
        if backend is None:
            backend = SqliteBackend(path, synchronous=synchronous, busy_timeout_secs=busy, on_close=_forget)
            _open[key] = backend
        return backend


@hookimpl
def nuvom_register_settings(register: Any) -> None:
    register("sqlite", SqliteOptions, env=ENV_NAMES)


@hookimpl
def nuvom_register_queue_backends(register: Any) -> None:
    register("sqlite", make_backend, description=_DESCRIPTION)


@hookimpl
def nuvom_register_result_backends(register: Any) -> None:
    register("sqlite", make_backend, description=_DESCRIPTION)
