"""Registers the ``sqlite`` store: queue, job store, results and worker registry.

Each app gets its own :class:`SqliteBackend` (its own connections and
wake-up listener) and uses it for every role, so finishing a job stores its
result in the same transaction; two apps on one database file are
independent objects over the same data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nuvom_kernel import hookimpl
from nuvom_kernel.settings import NuvomSettings
from nuvom_support.options import coerce_options

if TYPE_CHECKING:  # the implementation is imported when a backend is made, not when the plugin loads
    from nuvom_backend_sqlite.backend import SqliteBackend

ROLES = ("queue", "jobs", "results", "workers", "schedules")
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


def make_backend(settings: NuvomSettings, options: SqliteOptions | dict[str, Any]) -> SqliteBackend:
    """A new backend for the configured database file (the app owns and closes it)."""
    from nuvom_backend_sqlite.backend import SqliteBackend

    opts = options_model(options)
    path = settings.resolve_path(opts.path).resolve()
    return SqliteBackend(path, synchronous=opts.synchronous, busy_timeout_secs=opts.busy_timeout_secs)


@hookimpl
def nuvom_register_settings(register: Any) -> None:
    register("sqlite", SqliteOptions, env=ENV_NAMES)


@hookimpl
def nuvom_register_storage(register: Any) -> None:
    register("sqlite", make_backend, roles=ROLES, description=_DESCRIPTION)
