"""The SQLite file: opening it safely, connections, transactions, the WAL.

One connection per thread (``threading.local``); every read-then-write runs
in ``BEGIN IMMEDIATE`` so the write lock is taken before the read and two
writers can never act on the same snapshot.  ``busy_timeout`` makes SQLite
wait for the lock; on top of it a bounded retry absorbs the rare
``database is locked`` that SQLite returns without waiting, so it never
reaches a user unless the file is really stuck.

Faults of the environment reach users as one-line
:class:`~nuvom_kernel.errors.StoreError` subclasses naming the file and the
fix (:meth:`Database._fault`): a read-only or foreign file, a full disk, a
damaged file (confirmed with ``PRAGMA quick_check``; the other processes learn
it from a ``<db>.corrupt`` marker), and a file removed or replaced while open
(its device and inode are compared at most every ``identity_check_secs``;
the call that notices is refused and the next one uses the current file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nuvom_backend_sqlite.netshare import network_share_reason
from nuvom_backend_sqlite.schema import MIGRATIONS, SCHEMA_SQL, SCHEMA_VERSION
from nuvom_kernel.errors import (
    ConfigError,
    NuvomError,
    StoreAccessError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreReplacedError,
)
from nuvom_kernel.storefaults import store_error

T = TypeVar("T")

#: SQLite 3.35 added ``UPDATE ... RETURNING``.
HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
#: ``INSERT ... ON CONFLICT`` (upsert) needs 3.24 (2018).
MIN_SQLITE = (3, 24, 0)


class DatabaseBusyError(NuvomError):
    """The database stayed locked through every retry."""


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Database:
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
                for old in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS.get(old, ()):
                        conn.execute(statement)
                for statement in SCHEMA_SQL:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        try:
            self.write(create)
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
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
                if not _is_busy(exc):
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

    # -- faults of the file ----------------------------------------------------

    def _check_identity(self) -> None:
        """Refuse once, then reopen, when the file was removed or replaced; refuse
        while another process marked this file damaged.  At most every
        ``identity_check_secs`` (two ``stat`` calls)."""
        at = time.monotonic()
        if at - self._checked_at < self.identity_check_secs:
            return
        with self._lock:
            if at - self._checked_at < self.identity_check_secs:
                return
            self._checked_at = at
            try:
                info = os.stat(self.path)
                current: tuple[int, int] | None = (info.st_dev, info.st_ino)
            except FileNotFoundError:
                current = None
            except OSError:
                return  # e.g. a folder we may not search: the operation itself reports it
            replaced = current != self._identity
        if (self._reserve_due or self._low_space) and not replaced:
            self._ensure_reserve()
        if replaced:
            how = "was removed" if current is None else "was replaced by another file"
            self._reopen()
            raise StoreReplacedError(
                f"the SQLite database {self.path} {how} while this process had it open: jobs written "
                "since then went to a file no other process reads. This call stored nothing; retry it: "
                f"Nuvom now uses the file at {self.path}{' (a new, empty one)' if current is None else ''}. "
                "Stop workers and producers before deleting or replacing .nuvom", self.path)
        self._check_marker()

    def _reopen(self) -> None:
        self._create_file()
        with self._lock:
            self._generation += 1  # every thread opens a connection to the current file
        self._init_schema()

    def _check_marker(self) -> None:
        try:
            text = self.corrupt_marker.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        first, _, reason = text.partition("\n")
        if first.strip() == self._identity_text():
            raise StoreCorruptError(self._corrupt_message(reason.strip() or "marked damaged by another process"),
                                    self.path)

    def _identity_text(self) -> str:
        return "" if self._identity is None else f"{self._identity[0]} {self._identity[1]}"

    def _corrupt_message(self, reason: str) -> str:
        p, name = self.path, self.path.name
        if "not a database" in reason:
            return (f"{p} is not a usable SQLite database ({reason}): it is not a SQLite file, or its header "
                    "is destroyed; move it away or set NUVOM_SQLITE_DB_PATH to another file")
        return (
            f"the SQLite database {p} is damaged ({reason}); it is refused so that no job is stored where "
            f"it could be lost. To recover: stop every worker and producer using it, run 'sqlite3 {p} "
            f".recover | sqlite3 {p}.recovered', move {name}.recovered over {name} and delete {name}-wal, "
            f"{name}-shm and {name}.corrupt next to it; or move it away to start with an empty queue"
        )

    def verify(self) -> None:
        """Raise :class:`StoreCorruptError` if ``PRAGMA quick_check`` fails or another
        process marked this file damaged."""
        self._check_marker()
        reason = self.quick_check()
        if reason is not None:
            self._mark_corrupt(reason)
            raise StoreCorruptError(self._corrupt_message(reason), self.path)

    def quick_check(self) -> str | None:
        """``None`` if ``PRAGMA quick_check`` passes, else its first complaint."""
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout_ms / 1000)
        except (sqlite3.Error, ValueError) as exc:
            return str(exc)
        try:
            rows = conn.execute("PRAGMA quick_check(3)").fetchall()
        except sqlite3.DatabaseError as exc:
            return None if _is_busy(exc) else str(exc)
        finally:
            conn.close()
        complaints = [" ".join(str(r[0]).replace("*** in database main ***", "").split())
                      for r in rows if str(r[0]) != "ok"]
        if not complaints:
            return None
        text = "; ".join(c for c in complaints if c)
        return text if len(text) <= 160 else text[:157] + "..."

    def _fault(self, exc: sqlite3.Error) -> StoreError | None:
        """The :class:`StoreError` for a SQLite error caused by the file or the disk,
        or ``None`` for anything else (busy, constraint, programming errors)."""
        if _is_busy(exc) or isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError,
                                             sqlite3.InterfaceError)):
            return None
        name = str(getattr(exc, "sqlite_errorname", ""))
        text = str(exc).lower()
        p = self.path
        if name == "SQLITE_FULL" or "disk is full" in text:
            return StoreFullError(
                f"the SQLite database {p}: no space left on the device; free some space on it. What was "
                "stored is kept, and Nuvom carries on once there is room (it keeps a small reserve "
                f"file {p}.reserve to give back when the disk fills); or set NUVOM_SQLITE_DB_PATH to "
                "another disk", p)
        if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
            from nuvom_kernel.storefaults import _owner_hint

            return StoreAccessError(
                f"the SQLite database {p} is read-only for this process{_owner_hint(p)}; run Nuvom as "
                "the owner of the file and its folder, or give this user write access to both (SQLite "
                f"also writes {p.name}-wal and {p.name}-shm next to it), or set NUVOM_SQLITE_DB_PATH "
                "to a file this user owns", p)
        if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
            from nuvom_kernel.storefaults import _owner_hint

            return StoreAccessError(
                f"cannot open the SQLite database {p}{_owner_hint(p)}: check that its folder exists and "
                "this user may read and write it and the file, or set NUVOM_SQLITE_DB_PATH to "
                "another file", p)
        if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in text or "not a database" in text:
            reason = self.quick_check() or str(exc)
            self._mark_corrupt(reason)
            return StoreCorruptError(self._corrupt_message(reason), p)
        if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
            return StoreError(
                f"the SQLite database {p}: disk I/O error ({exc}); check the disk (a full disk, a "
                "removed device or a failing drive) and that the file was not moved or deleted", p)
        return None

    def _mark_corrupt(self, reason: str) -> None:
        """Tell the other processes (they check at most every ``identity_check_secs``)."""
        from nuvom_kernel.privatefs import FILE_MODE

        with contextlib.suppress(OSError):
            fd = os.open(self.corrupt_marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"{self._identity_text()}\n{reason}\n")

    def _size_reserve(self) -> None:
        """At most 1/16 of the disk (a small volume keeps most of its room), at least 64 KiB."""
        if self.reserve_bytes <= 0:
            return
        with contextlib.suppress(OSError):
            total = shutil.disk_usage(self.path.parent).total
            self.reserve_bytes = max(64 * 1024, min(self.reserve_bytes, total // 16))
        self._reserve_due = True
        self._ensure_reserve()

    def check_room(self) -> None:
        """Refuse *new* jobs while the disk is nearly full (the reserve is given
        back and less than 2 x ``reserve_bytes`` is free): the room that is left
        lets the jobs already stored run, finish and be purged."""
        if not self._low_space:
            return
        self._ensure_reserve()  # cheap (a statvfs), and only while the disk is low
        if self._low_space:
            need = 2 * self.reserve_bytes
            raise StoreFullError(
                f"the SQLite database {self.path}: the disk is nearly full, so new jobs are refused while the "
                f"jobs already stored can still run and be purged; free some space (new jobs are accepted "
                f"again once {need / 1e6:.1f} MB are free) or set NUVOM_SQLITE_DB_PATH to another disk",
                self.path, errno.ENOSPC)

    def _ensure_reserve(self) -> None:
        """Keep ``<db>.reserve`` (``reserve_bytes`` of zeros) while the disk has
        plenty of room; see :meth:`_after_full` and :meth:`check_room`."""
        if self.reserve_bytes <= 0:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                if self.reserve.stat().st_size >= self.reserve_bytes:
                    self._reserve_due = self._low_space = False
                    return
            if self._low_space and self.wal_size() > 0:
                self._truncate_wal()  # the WAL keeps its high-water mark: give that room back first
            if shutil.disk_usage(self.path.parent).free < 2 * self.reserve_bytes:
                # not now: try again on a later check; meanwhile new jobs are refused
                self._reserve_due = self._low_space = True
                return
            tmp = self.reserve.with_name(f".{self.reserve.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
            try:
                os.write(fd, bytes(self.reserve_bytes))
            finally:
                os.close(fd)
            os.replace(tmp, self.reserve)
            self._reserve_due = self._low_space = False
        except OSError:
            self._reserve_due = True
            with contextlib.suppress(OSError):
                os.unlink(self.reserve.with_name(f".{self.reserve.name}.{os.getpid()}.tmp"))

    def _after_full(self) -> None:
        """Disk full: give back the reserve so a checkpoint can copy the WAL into
        the database and truncate it.  Without it a WAL that filled the disk
        could never be checkpointed (the database cannot grow), and the store
        stayed stuck even after its jobs were drained.  A new reserve is made
        once the disk has room again."""
        with contextlib.suppress(OSError):
            self.reserve.unlink()
        self._reserve_due = self._low_space = True
        self._truncate_wal()

    def _truncate_wal(self) -> None:
        with contextlib.suppress(sqlite3.Error, StoreError):
            conn = self.connection()
            if not conn.in_transaction:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

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
            if not _is_busy(exc):
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
