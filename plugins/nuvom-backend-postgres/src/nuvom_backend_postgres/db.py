"""Connections: a psycopg pool, retries after a lost connection, the server clock.

Every operation runs through :meth:`Database.run`, which takes a pooled
connection (autocommit) and, when the connection turns out to be dead (the
server restarted, ``pg_terminate_backend``, a network cut), drops the pool's
broken connections and runs the operation again on a fresh one with a short
backoff.  Every write the backend does is safe to repeat: enqueue is
idempotent by job id, and finishes, starts and renewals are fenced by token.
After ``retry_secs`` the error reaches the caller (a worker keeps its
outcomes and retries by itself).

The connection string is never logged nor put in an error message:
:func:`describe` shows host, port, database and user only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool

from nuvom_kernel.errors import ConfigError

log = logging.getLogger("nuvom.postgres")
T = TypeVar("T")

#: Raised for a lost or refused connection: worth retrying on a new one.
RETRYABLE = (psycopg.OperationalError,)


def parse_conninfo(url: str, password: str | None) -> str:
    """A libpq connection string from a URL or ``key=value`` string (empty: libpq's
    ``PG*`` environment variables).  Errors never echo the string."""
    try:
        params = pg_conninfo.conninfo_to_dict(url) if url else {}
    except psycopg.ProgrammingError:
        raise ConfigError(
            "invalid postgres.url: expected postgresql://user@host:port/dbname or 'host=... dbname=...' "
            "(the value is not shown because it may hold a password)"
        ) from None
    if password:
        params["password"] = password
    return pg_conninfo.make_conninfo("", **params)


def describe(conninfo: str) -> str:
    """Where a connection string points, without its password."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    host = str(params.get("host") or "(libpq default host)")
    port = str(params.get("port") or "5432")
    user = str(params.get("user") or "")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{params.get('dbname') or ''}"


class Database:
    """A connection pool and the retry policy around it."""

    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 8, prepare: bool = True,
                 connect_timeout: float = 10.0, retry_secs: float = 3.0) -> None:
        try:
            params = pg_conninfo.conninfo_to_dict(conninfo) if conninfo else {}
        except psycopg.ProgrammingError:
            raise ConfigError("invalid PostgreSQL connection string (not shown: it may hold a password)") from None
        params.setdefault("application_name", "nuvom")  # operators find (and tests kill) our connections by it
        if prepare:
            # the hot statements are big CTEs: planning one costs several times running it, and
            # PostgreSQL's "auto" mode keeps re-planning them; their plans do not depend on the values
            options = str(params.get("options") or "")
            if "plan_cache_mode" not in options:
                params["options"] = (options + " -c plan_cache_mode=force_generic_plan").strip()
        self.conninfo = conninfo = pg_conninfo.make_conninfo("", **params)
        self.where = describe(conninfo)
        self.retry_secs = retry_secs
        self.connect_timeout = connect_timeout
        # behind PgBouncer in transaction mode server-side prepared statements may
        # land on another server connection: ``prepare=False`` never prepares
        self.connect_kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 5 if prepare else None}
        self.pool = ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=self.connect_kwargs, open=False,
            name="nuvom-postgres", timeout=connect_timeout,
        )
        self._opened = False
        self._lock = threading.Lock()
        #: server clock minus this host's clock, measured at open and by each sweep
        self.clock_offset = 0.0
        #: time.monotonic() of the last measurement (0: never)
        self.clock_read_at = 0.0

    def open(self) -> None:
        with self._lock:
            if self._opened:
                return
            self.pool.open(wait=False)
            self._opened = True

    def connect(self) -> psycopg.Connection[Any]:
        """A connection outside the pool (LISTEN, migrations, the CLI)."""
        return psycopg.connect(self.conninfo, connect_timeout=max(1, int(self.connect_timeout)), **self.connect_kwargs)

    def run(self, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``operation(conn)`` on a pooled autocommit connection, again on a fresh
        connection after a connection error, until ``retry_secs`` have passed."""
        self.open()
        deadline = time.monotonic() + self.retry_secs
        delay = 0.02
        while True:
            try:
                with self.pool.connection() as conn:
                    return operation(conn)
            except RETRYABLE as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.info("postgres connection to %s failed (%s); retrying on a new connection",
                         self.where, type(exc).__name__)
                try:
                    self.pool.check()  # drop every idle connection the server closed
                except Exception:  # pragma: no cover - the next attempt reports the real error
                    pass
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def server_now(self) -> float:
        """The server's clock (POSIX seconds); also refreshes :attr:`clock_offset`."""

        def read(conn: psycopg.Connection[Any]) -> tuple[float, float, float]:
            before = time.time()
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            return before, float(row[0]) if row else before, time.time()

        before, server, after = self.run(read)
        self.observe_clock(before, server, after)
        return server

    def observe_clock(self, before: float, server: float, after: float) -> None:
        """The server read ``server`` between this host's ``before`` and ``after``."""
        self.clock_offset = server - (before + after) / 2
        self.clock_read_at = time.monotonic()

    def now(self) -> float:
        """This host's estimate of the server clock (exact to the round trip)."""
        return time.time() + self.clock_offset

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self.pool.close()
                self._opened = False
                self.pool = ConnectionPool(
                    self.conninfo, min_size=self.pool.min_size, max_size=self.pool.max_size,
                    kwargs=self.connect_kwargs, open=False, name="nuvom-postgres", timeout=self.connect_timeout,
                )
