"""Faults of the SQLite file, as one-line :class:`~nuvom_kernel.errors.StoreError` types.

:class:`FileFaults` is mixed into :class:`~nuvom_backend_sqlite.database.Database`:

- **removed or replaced** (``rm -rf .nuvom`` under a running process): the
  file's device and inode are compared at most every ``identity_check_secs``;
  the call that notices is refused with ``StoreReplacedError`` (nothing is
  stored in a file no other process reads) and the next one uses the file now
  at the path;
- **damaged**: a SQLite "malformed"/"not a database" error is confirmed with
  ``PRAGMA quick_check`` and raised as ``StoreCorruptError`` naming the file
  and how to recover; ``<db>.corrupt`` tells the other processes;
- **read-only, another owner, cannot open**: ``StoreAccessError`` naming the
  owner, the mode and this process's uid;
- **a full disk**: ``StoreFullError``.  A reserve file (``<db>.reserve``) is
  given back when the disk fills, so a checkpoint can move the WAL into the
  database and truncate it; meanwhile new jobs are refused (:meth:`check_room`)
  so the room left serves to run, finish and purge what is stored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nuvom_kernel.errors import (
    StoreAccessError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreReplacedError,
)
from nuvom_kernel.storefaults import _owner_hint


def is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class FileFaults:
    """Needs what :class:`~nuvom_backend_sqlite.database.Database` sets up."""

    path: Path
    busy_timeout_ms: int
    identity_check_secs: float
    corrupt_marker: Path
    reserve: Path
    reserve_bytes: int
    _lock: threading.Lock
    _generation: int
    _identity: tuple[int, int] | None
    _checked_at: float
    _reserve_due: bool
    _low_space: bool

    if TYPE_CHECKING:  # provided by Database
        def connection(self) -> sqlite3.Connection: ...
        def wal_size(self) -> int: ...
        def _create_file(self) -> None: ...
        def _init_schema(self) -> None: ...


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
            return None if is_busy(exc) else str(exc)
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
        if is_busy(exc) or isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError,
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
            return StoreAccessError(
                f"the SQLite database {p} is read-only for this process{_owner_hint(p)}; run Nuvom as "
                "the owner of the file and its folder, or give this user write access to both (SQLite "
                f"also writes {p.name}-wal and {p.name}-shm next to it), or set NUVOM_SQLITE_DB_PATH "
                "to a file this user owns", p)
        if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
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
        from nuvom_support.files import FILE_MODE

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
