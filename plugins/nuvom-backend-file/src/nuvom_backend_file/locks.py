"""Per-name mutation locks: a file created with ``O_CREAT | O_EXCL``.

Creating a file exclusively is atomic on every local file system, Windows
included, so it serves as a mutex between threads and processes without
``fcntl``.  A process that dies holding a lock leaves the file behind; a lock
older than ``stale_secs`` is broken by renaming it aside (only one breaker's
rename succeeds) and deleting it.  A holder that is suspended for longer than
``stale_secs`` in the middle of a change can therefore race its successor:
keep ``stale_secs`` far above the few milliseconds a change takes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from nuvom_backend_file.records import FILE_MODE, retrying
from nuvom_kernel.errors import NuvomError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class LockTimeoutError(NuvomError):
    """A job stayed locked by another process for longer than the timeout."""


class LockTable:
    def __init__(self, directory: Path, *, stale_secs: float, timeout_secs: float) -> None:
        self.directory = directory
        self._prefix = os.path.join(directory, "")
        self.stale_secs = stale_secs
        self.timeout_secs = timeout_secs

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.lock"

    def try_acquire(self, name: str) -> bool:
        try:
            fd = os.open(f"{self._prefix}{name}.lock", _FLAGS, FILE_MODE)
        except FileExistsError:
            return False
        except PermissionError:  # Windows: the lock file is being deleted right now
            return False
        os.close(fd)
        return True

    def acquire(self, name: str) -> None:
        """Wait for the lock, breaking it if its holder has been gone for ``stale_secs``."""
        deadline = time.monotonic() + self.timeout_secs
        delay = 0.0002
        while True:
            if self.try_acquire(name):
                return
            if self.break_if_stale(name):
                continue
            if time.monotonic() > deadline:
                raise LockTimeoutError(
                    f"{self.path(name)} has been held by another process for over {self.timeout_secs:.0f} s; "
                    f"if no Nuvom process is running, delete it (locks older than {self.stale_secs:.0f} s are "
                    "broken automatically)"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def release(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            retrying(os.unlink, f"{self._prefix}{name}.lock")

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        self.acquire(name)
        try:
            yield
        finally:
            self.release(name)

    def break_if_stale(self, name: str, at: float | None = None) -> bool:
        """Remove the lock if it is older than ``stale_secs``; True if it was broken."""
        path = self.path(name)
        try:
            age = (time.time() if at is None else at) - path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try again at once
        except OSError:
            return False
        if age < self.stale_secs:
            return False
        aside = path.with_name(f"{path.name}.{secrets.token_hex(4)}.stale")
        try:
            retrying(os.replace, path, aside)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        with contextlib.suppress(OSError):
            os.unlink(aside)
        return True

    def break_stale(self) -> int:
        """Break every stale lock in the directory; returns how many."""
        broken = 0
        at = time.time()
        try:
            with os.scandir(self.directory) as entries:
                names = [e.name for e in entries]
        except FileNotFoundError:
            return 0
        for entry_name in names:
            if entry_name.endswith(".stale"):
                with contextlib.suppress(OSError):
                    if at - os.stat(self.directory / entry_name).st_mtime > self.stale_secs:
                        os.unlink(self.directory / entry_name)
                continue
            if entry_name.endswith(".lock"):
                name = entry_name[: -len(".lock")]
                try:
                    if at - os.stat(self.path(name)).st_mtime < self.stale_secs:
                        continue
                except OSError:
                    continue
                if self.break_if_stale(name, at):
                    broken += 1
        return broken
