"""Registers the ``postgres`` store (queue, job store, results, worker registry),
its settings and the ``nuvom postgres`` commands.

The factory returns a new object on each call and keeps no process-wide
cache: each app creates one object for every role and closes it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nuvom_kernel import hookimpl
from nuvom_kernel.settings import NuvomSettings
from nuvom_support.options import coerce_options

if TYPE_CHECKING:  # the implementation is imported when a backend is made, not when the plugin loads
    from nuvom_backend_postgres.backend import PostgresBackend

ROLES = ("queue", "jobs", "results", "workers", "schedules")
_DESCRIPTION = "PostgreSQL for queue, jobs, results, workers and schedules; many worker hosts (psycopg 3, SKIP LOCKED)."


# A field named ``schema`` shadows pydantic's deprecated ``BaseModel.schema()``;
# ``schema`` is the word PostgreSQL users look for (NUVOM_POSTGRES__SCHEMA).
warnings.filterwarnings("ignore", message='Field name "schema" in "PostgresOptions" shadows', category=UserWarning)


class PostgresOptions(BaseModel):
    """The PostgreSQL backend's settings (section ``postgres``:
    ``NUVOM_POSTGRES__URL``, ``[tool.nuvom.postgres]``)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = Field(
        SecretStr(""), description="postgresql://user@host:5432/dbname (or 'host=... dbname=...'); empty: libpq's "
        "PGHOST, PGUSER, PGPASSWORD... environment variables. Keep passwords in the environment, never in a committed file.")
    password: SecretStr | None = Field(
        None, description="The password, if not in the URL (NUVOM_POSTGRES__PASSWORD, or PGPASSWORD / ~/.pgpass).")
    schema: str = Field("nuvom", min_length=1, max_length=48,  # type: ignore[assignment]
                             description="PostgreSQL schema holding Nuvom's tables (a-z 0-9 _).")
    pool_size: int = Field(8, ge=1, le=200, description="Most pooled connections per process.")
    wakeups: Literal["notify", "poll"] = Field(
        "notify", description="notify: LISTEN/NOTIFY wake idle workers at once; poll: polling only and no prepared "
        "statements, for PgBouncer in transaction mode.")
    idle_poll_secs: float = Field(
        10.0, ge=0, le=3600, allow_inf_nan=False,
        description="notify mode: an idle worker whose LISTEN connection is up asks the server for work only this "
        "often, when woken, or when a scheduled job comes due (0: at every poll_interval_secs).")
    migrate: bool = Field(True, description="Create and migrate the schema when a backend opens (under an advisory "
                                            "lock); false: run `nuvom postgres migrate` yourself.")
    retention_days: float | None = Field(
        7.0, ge=0, description="Finished jobs (and results) are deleted this long after they finished; empty keeps them.")
    keep_hot_secs: float = Field(60.0, ge=0, le=86400,
                                 description="Finished jobs stay in the hot table this long before moving to history.")
    connect_timeout_secs: float = Field(10.0, gt=0, le=600, description="Longest wait for a new connection.")
    retry_secs: float = Field(3.0, ge=0, le=600,
                              description="How long an operation retries on new connections after a lost one.")
    empty_on_open: bool = Field(
        False, description="TESTS ONLY: delete every job of the schema when a backend opens (`nuvom plugin test` "
        "against a scratch schema); refused for the default schema.")


def options_model(options: PostgresOptions | dict[str, Any]) -> PostgresOptions:
    """``options`` as the kernel passes them (validated), or a plain table (``nuvom plugin test --option``)."""
    return coerce_options(PostgresOptions, options, "postgres")


def backend_from(opts: PostgresOptions) -> PostgresBackend:
    from nuvom_backend_postgres.backend import PostgresBackend
    from nuvom_backend_postgres.db import parse_conninfo
    from nuvom_kernel.errors import ConfigError

    if opts.empty_on_open and opts.schema == "nuvom":
        raise ConfigError("postgres.empty_on_open deletes every job when a backend opens: it needs a scratch "
                          "schema (set postgres.schema to something other than 'nuvom')")
    conninfo = parse_conninfo(opts.url.get_secret_value(), opts.password.get_secret_value() if opts.password else None)
    return PostgresBackend(
        conninfo, schema=opts.schema, pool_size=opts.pool_size, wakeups=opts.wakeups, migrate=opts.migrate,
        retention_secs=None if opts.retention_days is None else opts.retention_days * 86400.0,
        keep_hot_secs=opts.keep_hot_secs, idle_poll_secs=opts.idle_poll_secs, connect_timeout=opts.connect_timeout_secs, retry_secs=opts.retry_secs,
        empty_on_open=opts.empty_on_open,
    )


def make_backend(settings: NuvomSettings, options: PostgresOptions | dict[str, Any]) -> PostgresBackend:
    """A backend for the configured database; it connects on first use."""
    return backend_from(options_model(options))


@hookimpl
def nuvom_register_settings(register: Any) -> None:
    register("postgres", PostgresOptions)


@hookimpl
def nuvom_register_storage(register: Any) -> None:
    register("postgres", make_backend, roles=ROLES, description=_DESCRIPTION)


@hookimpl
def nuvom_register_commands(app: Any, cli: Any) -> None:
    """``nuvom postgres migrate | status | copy-jobs``."""
    from nuvom_backend_postgres.cli import register_commands

    register_commands(app, cli)
