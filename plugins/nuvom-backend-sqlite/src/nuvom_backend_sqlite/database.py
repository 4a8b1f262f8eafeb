"""The SQLite file: opening it safely, connections, transactions, the WAL.

One connection per thread (``threading.local``); every read-then-write runs
in ``BEGIN IMMEDIATE`` so the write lock is taken before the read and two
writers can never act on the same snapshot.  ``busy_timeout`` makes SQLite
wait for the lock; on top of it a bounded retry absorbs the rare
``database is locked`` that SQLite returns without waiting, so it never
reaches a user unless the file is really stuck.

Faults of the environment reach users as one-line
:class:`~nuvom_kernel.errors.StoreError` subclasses naming the file and the
fix: a read-only or foreign file, a full disk, a damaged file, a file removed
or replaced while open (see :mod:`nuvom_backend_sqlite.faults`).
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nuvom_backend_sqlite.faults import FileFaults, is_busy
from nuvom_backend_sqlite.netshare import network_share_reason
from nuvom_backend_sqlite.rows import UPDATE_SQL, update_values
from nuvom_backend_sqlite.schema import MIGRATIONS, SCHEMA_SQL, SCHEMA_VERSION
from nuvom_kernel.errors import (
    ConfigError,
    NuvomError,
    StoreAccessError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
)
from nuvom_kernel.models import LEASED_STATES, Job
from nuvom_kernel.storefaults import store_error

T = TypeVar("T")

#: SQLite 3.35 added ``UPDATE ... RETURNING``.
HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
#: ``INSERT ... ON CONFLICT`` (upsert) needs 3.24 (2018).
MIN_SQLITE = (3, 24, 0)


def split_rows(conn: sqlite3.Connection, batch: int = 1000) -> int:
    """Version 2 to 3: move each job's hot fields out of its JSON into the
    new columns, leaving the cold part in ``data``.  A row whose JSON cannot
    be decoded is left as it was: readers quarantine it as before.  Returns
    the number of rows converted."""
    converted, last = 0, -1
    while True:
        rows = conn.execute(
            "SELECT rowid, id, data, lease_expires_at FROM jobs WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (last, batch),
        ).fetchall()
        if not rows:
            return converted
        for rowid, job_id, data, lease in rows:
            last = rowid
            try:
                job = Job.from_json(data)
            except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
                continue
            if job.id != job_id:
                continue
            # version 2: the column is the authority for the lease
            job.lease_expires_at = lease if job.state in LEASED_STATES else None
            conn.execute(UPDATE_SQL, update_values(job))
            converted += 1


class DatabaseBusyError(NuvomError):
    """The database stayed locked through every retry."""


class Database(FileFaults):
    """An open Nuvom SQLite file shared by the threads of one process."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout_secs: float = 30.0,
        retries: int = 8,
        wal_limit_bytes: int = 32 * 1024 * 1024,
        checkpoint_every: int = 1000,
        identity_check_secs: float = 1.0,
        reserve_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigError(
                f"nuvom-backend-sqlite needs SQLite >= 3.24; this Python links SQLite {sqlite3.sqlite_version}: "
                "use a newer Python build, or another backend"
            )
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ConfigError(
                f"NUVOM_SQLITE_DB_PATH={str(path)!r} is not a file path: workers in other "
                "processes could not see it; use a file such as .nuvom/result.db, or the memory backend"
            )
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL"):
            raise ConfigError(f"NUVOM_SQLITE_SYNCHRONOUS={synchronous!r} is invalid: use NORMAL or FULL")
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = int(busy_timeout_secs * 1000)
        self.retries = retries
        self.wal_limit_bytes = wal_limit_bytes
        self.checkpoint_every = checkpoint_every
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._generation = 0
        self._pid = os.getpid()
        self._commits = 0
        self.identity_check_secs = identity_check_secs
        self._identity: tuple[int, int] | None = None
        self._checked_at = 0.0
        self.corrupt_marker = Path(f"{self.path}.corrupt")
        self.reserve = Path(f"{self.path}.reserve")
        self.reserve_bytes = reserve_bytes
        self._reserve_due = False
        self._low_space = False
        try:
            self._open_file()
        except StoreError:
            raise
        except OSError as exc:
            raise store_error(exc, self.path, what="the SQLite database", setting="NUVOM_SQLITE_DB_PATH") from exc

    def _open_file(self) -> None:
        reason = network_share_reason(self.path)
        if reason is not None:
            raise ConfigError(
                f"refusing SQLite database {self.path}: {reason}. SQLite's locking is not reliable "
                "on network shares (jobs could run twice or the file could be corrupted); put "
                "NUVOM_SQLITE_DB_PATH on a local disk, or use the redis or postgres backend"
            )
        self._create_file()
        self._size_reserve()
        self._init_schema()

    # -- opening ---------------------------------------------------------------

    def _create_file(self) -> None:
        """Parent directories 0700 and the file 0600 on POSIX, whatever the umask."""
        if self.path.is_dir():
            raise StoreAccessError(
                f"the SQLite database path {self.path} is a directory, not a file; set "
                f"NUVOM_SQLITE_DB_PATH to a file path such as {self.path / 'result.db'}", self.path)
        try:
            self._create_file_or_raise()
            info = os.stat(self.path)
        except OSError as exc:
            raise store_error(exc, self.path, what="the SQLite database", setting="NUVOM_SQLITE_DB_PATH") from exc
        self._identity = (info.st_dev, info.st_ino)
        self._checked_at = time.monotonic()
        if self._reserve_due:
            self._ensure_reserve()

    def _create_file_or_raise(self) -> None:
        missing: list[Path] = []
        parent = self.path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
            if os.name == "posix":
                os.chmod(directory, 0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self.secure_files()

    def secure_files(self) -> None:
        if os.name != "posix":
            return
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
            check_same_thread=False, cached_statements=256,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA journal_size_limit={self.wal_limit_bytes}")
            if self.reserve_bytes > 0:
                # Checkpoint often enough that what the WAL holds beyond the database
                # always fits in the reserve: on a full disk, giving the reserve back
                # lets a checkpoint finish and the WAL be truncated (see _after_full).
                # SQLite's default (1000 pages, 4 MB) fits the default reserve; only a
                # small disk (a smaller reserve) checkpoints more often.
                page = conn.execute("PRAGMA page_size").fetchone()[0] or 4096
                pages = max(16, self.reserve_bytes // page)
                if pages < 1000:
                    conn.execute(f"PRAGMA wal_autocheckpoint={pages}")
            conn.execute("PRAGMA cache_size=-8000")
            conn.execute("PRAGMA temp_store=MEMORY")
        except BaseException:
            conn.close()
            raise
        return conn

    def _init_schema(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} has Nuvom SQLite schema version {version}, but this "
                    f"nuvom-backend-sqlite understands only up to version {SCHEMA_VERSION}: it was "
                    "written by a newer release; upgrade nuvom-backend-sqlite, or set "
                    "NUVOM_SQLITE_DB_PATH to another file"
                )
            if version < SCHEMA_VERSION:
                fresh = not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
                for old in range(SCHEMA_VERSION if fresh else version, SCHEMA_VERSION):
                    for statement in MIGRATIONS.get(old, ()):
                        conn.execute(statement)
                    if old == 2:
                        split_rows(conn)
                for statement in SCHEMA_SQL:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        try:
            self.write(create)
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                raise
            raise StoreCorruptError(
                f"{self.path} is not a usable SQLite database ({exc}); move it away or set "
                "NUVOM_SQLITE_DB_PATH to another file", self.path
            ) from exc
        self.secure_files()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and after ``close``)."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.generation == self._generation and self._pid == os.getpid():
            return conn
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                conn.close()  # this thread's connection to a file that was replaced
        if os.getpid() != self._pid:
            # A forked child must never touch (not even close) the parent's
            # connections: closing one would drop the parent's POSIX locks.
            with self._lock:
                self._connections, self._pid = [], os.getpid()
                self._generation += 1
        try:
            conn = self._open()
        except sqlite3.Error as exc:
            fault = self._fault(exc)
            if fault is None:
                raise
            raise fault from exc
        with self._lock:
            self._connections.append(conn)
            local.conn, local.generation = conn, self._generation
        return conn

    # -- transactions ----------------------------------------------------------

    def _retry(self, fn: Callable[[], T]) -> T:
        delay = 0.005
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if attempt == self.retries:
                    raise DatabaseBusyError(
                        f"{self.path} stayed locked after {self.retries + 1} attempts of "
                        f"{self.busy_timeout_ms / 1000:g} s each ({exc}); another process holds a "
                        "long write transaction, or the file is on a file system without working locks"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in ``BEGIN IMMEDIATE`` ... ``COMMIT``; retried whole on busy,
        so ``fn`` must not have effects outside the connection.  Faults of the
        file (see the module docstring) raise a :class:`StoreError`."""
        self._check_identity()
        conn = self.connection()

        def once() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        try:
            result = self._retry(once)
        except sqlite3.Error as exc:
            fault = self._fault(exc)
            if fault is None:
                raise
            if isinstance(fault, StoreFullError):
                self._after_full()
            raise fault from exc
        self._commits += 1
        if self._commits % self.checkpoint_every == 0:
            self.checkpoint()
        return result

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement outside any explicit transaction (its own snapshot)."""
        self._check_identity()
        conn = self.connection()
        try:
            return self._retry(lambda: conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            fault = self._fault(exc)
            if fault is None:
                raise
            raise fault from exc

    # -- the WAL ---------------------------------------------------------------

    def wal_size(self) -> int:
        try:
            return os.path.getsize(f"{self.path}-wal")
        except OSError:
            return 0

    def checkpoint(self) -> None:
        """Copy the WAL into the database; truncate it when it grew past the
        limit.  Never waits long: a busy checkpoint is simply tried again later."""
        conn = self.connection()
        if conn.in_transaction:
            return
        truncate = self.wal_size() > self.wal_limit_bytes
        try:
            if truncate:
                conn.execute("PRAGMA busy_timeout=200")
            conn.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})").fetchone()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        finally:
            if truncate:
                conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")

    def close(self) -> None:
        """Close every thread's connection; the next call opens new ones."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._generation += 1
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
