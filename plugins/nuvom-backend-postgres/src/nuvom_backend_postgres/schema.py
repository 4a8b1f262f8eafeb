"""The tables, and versioned migrations that many processes may run at once.

Everything lives in one PostgreSQL schema (``nuvom`` by default, the
``schema`` setting).  ``<schema>.migrations`` records each applied version;
:func:`migrate` applies the missing ones inside one transaction that holds a
transaction-level advisory lock on the schema's name, so ten workers starting
together apply each migration once and the others wait, then see it done.
(Transaction-level locks also work behind PgBouncer in transaction mode.)

Two job tables keep the claim path small:

* ``jobs`` (hot): live jobs and jobs finished a moment ago; the claim,
  lease and unique-key indexes are partial, over live states only;
* ``jobs_done`` (history): finished jobs, moved there in batches by the
  sweep and deleted after the retention period.

Both get their own autovacuum settings: the hot table is rewritten at the
rate jobs flow, so it is vacuumed after a small fraction of changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from nuvom_kernel.errors import ConfigError

SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")

LIVE = "('queued','scheduled','claimed','running')"
LEASED = "('claimed','running')"
TERMINAL = "('succeeded','failed','cancelled','dead')"

_JOB_TABLE = """(
    id text PRIMARY KEY,
    queue text NOT NULL,
    state text NOT NULL,
    priority int4 NOT NULL,
    ready_at float8 NOT NULL,
    created_at float8 NOT NULL,
    finished_at float8,
    unique_key text,
    token int8,
    lease_expires_at float8,
    task text NOT NULL,
    data text NOT NULL,
    attempts int4 NOT NULL DEFAULT 0,
    eta float8,
    updated_at float8,
    started_at float8,
    worker_id text,
    result text,
    progress text,
    reason text,
    cancel_requested bool NOT NULL DEFAULT false,
    lease_expiries int4 NOT NULL DEFAULT 0,
    max_lease_expiries int4 NOT NULL DEFAULT 3,
    store_result bool NOT NULL DEFAULT true,
    history jsonb NOT NULL DEFAULT '[]',
    errors jsonb NOT NULL DEFAULT '[]'
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


#: ``{s}`` stands for the quoted schema name.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "jobs, jobs_done, workers, token sequence", (
        "CREATE SEQUENCE {s}.token_seq",
        # Hot table: rows churn at the job rate, so vacuum after 1% of changes
        # (not the default 20%) and without cost-based pauses.
        f"""CREATE TABLE {{s}}.jobs {_JOB_TABLE} WITH (
            fillfactor = 80,
            autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 500,
            autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0)""",
        # claims walk this in order, one queue at a time
        "CREATE INDEX jobs_claim ON {s}.jobs (queue, priority DESC, ready_at, id) WHERE state IN ('queued','scheduled')",
        f"CREATE INDEX jobs_lease ON {{s}}.jobs (lease_expires_at) WHERE state IN {LEASED}",
        f"CREATE UNIQUE INDEX jobs_unique ON {{s}}.jobs (unique_key) WHERE unique_key IS NOT NULL AND state IN {LIVE}",
        "CREATE INDEX jobs_created ON {s}.jobs (created_at DESC, id DESC)",
        f"CREATE INDEX jobs_finished ON {{s}}.jobs (finished_at) WHERE state IN {TERMINAL}",
        # History: append-mostly, large; insert-triggered vacuum keeps the visibility map fresh.
        f"""CREATE TABLE {{s}}.jobs_done {_JOB_TABLE} WITH (
            autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_insert_scale_factor = 0.05,
            autovacuum_analyze_scale_factor = 0.05)""",
        "CREATE INDEX jobs_done_created ON {s}.jobs_done (created_at DESC, id DESC)",
        "CREATE INDEX jobs_done_finished ON {s}.jobs_done (finished_at)",
        """CREATE TABLE {s}.workers (
            id text PRIMARY KEY,
            heartbeat_at float8 NOT NULL,
            data text NOT NULL
        )""",
    )),
    Migration(2, "schedules", (
        # one row per schedule; the fire locks the row and checks state + next_fire_at
        """CREATE TABLE {s}.schedules (
            id text PRIMARY KEY,
            state text NOT NULL,
            next_fire_at float8,
            data text NOT NULL
        )""",
        "CREATE INDEX schedules_due ON {s}.schedules (next_fire_at, id) WHERE state = 'active'",
    )),
)

LATEST = MIGRATIONS[-1].version


def check_schema_name(schema: str) -> str:
    if not isinstance(schema, str) or not SCHEMA_PATTERN.match(schema):
        raise ConfigError(
            f"invalid PostgreSQL schema name {schema!r} for the postgres backend: use 1-48 characters "
            "from a-z 0-9 _ starting with a letter or underscore (setting postgres.schema)"
        )
    return schema


def _lock_key(schema: str) -> sql.Composed:
    return sql.SQL("pg_advisory_xact_lock(hashtext({}))").format(sql.Literal(f"nuvom-migrate:{schema}"))


def applied_versions(conn: psycopg.Connection, schema: str) -> dict[int, str] | None:
    """``{version: applied_at}``; ``None`` if the schema has no migrations table yet."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.migrations",)).fetchone()
    if exists is None or exists[0] is None:
        return None
    rows = conn.execute(
        sql.SQL("SELECT version, applied_at::text FROM {}.migrations ORDER BY version").format(sql.Identifier(schema))
    ).fetchall()
    return {int(v): str(at) for v, at in rows}


def pending(conn: psycopg.Connection, schema: str) -> list[Migration]:
    applied = applied_versions(conn, schema) or {}
    _check_not_newer(applied, schema)
    return [m for m in MIGRATIONS if m.version not in applied]


def _check_not_newer(applied: dict[int, str], schema: str) -> None:
    newest = max(applied, default=0)
    if newest > LATEST:
        raise ConfigError(
            f"the PostgreSQL schema {schema!r} is at version {newest}, newer than this nuvom-backend-postgres "
            f"knows ({LATEST}): upgrade nuvom-backend-postgres on this host"
        )


def migrate(conn: psycopg.Connection, schema: str) -> list[int]:
    """Apply every missing migration (in one transaction, under the schema's
    advisory lock); returns the versions this call applied.  ``conn`` must be
    in autocommit mode (outside any transaction)."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(sql.SQL("SELECT ") + _lock_key(schema))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.migrations (version int4 PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        ).format(ident))
        todo = pending(conn, schema)
        for migration in todo:
            for statement in migration.statements:
                conn.execute(sql.SQL(statement.replace("{s}", "{schema}")).format(schema=ident))  # type: ignore[arg-type]
            conn.execute(sql.SQL("INSERT INTO {}.migrations (version, name) VALUES (%s, %s)").format(ident),
                         (migration.version, migration.name))
    return [m.version for m in todo]


def ensure(conn: psycopg.Connection, schema: str, *, auto: bool) -> None:
    """At open: nothing to do when the schema is current (one cheap query,
    no lock); otherwise migrate, or say how when ``auto`` is off."""
    applied = applied_versions(conn, schema)
    if applied is not None:
        _check_not_newer(applied, schema)
        if all(m.version in applied for m in MIGRATIONS):
            return
    if not auto:
        missing = [m.version for m in MIGRATIONS if applied is None or m.version not in applied]
        raise ConfigError(
            f"the PostgreSQL schema {schema!r} lacks migration(s) {missing}: run `nuvom postgres migrate`, "
            "or set postgres.migrate = true to migrate when a backend opens"
        )
    migrate(conn, schema)
