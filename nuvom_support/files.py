"""Owner-only files and directories under ``.nuvom``, whatever the umask.

Everything Nuvom keeps in a project (``.nuvom/`` and what lies under it: the
manifest, stop files, doorbell entries, queue directories, databases) is
created 0700 (directories) and 0600 (files) on POSIX.  ``mkdir(mode=...)``
and ``os.open(..., mode)`` only *narrow* by the umask, and ``mkdir(parents=True)``
creates the parents with the default mode, so every directory created is
``chmod``-ed explicitly.  On Windows the modes do not apply (the profile's
ACLs do), and these functions only create.

:func:`check_trusted_file` is the other half: a file whose content decides
what code a worker imports (the task manifest) is used only when it lies
inside the project and no other user could have written it.

:func:`retrying` and :func:`atomic_write` are the one place that knows how to
replace a file on every platform: Windows refuses to replace a file another
process holds open for a moment (a reader, an antivirus scanner).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nuvom_kernel.errors import NuvomError

DIR_MODE = 0o700
FILE_MODE = 0o600
_POSIX = os.name == "posix"
_RETRIES = 8
_FIRST_BACKOFF = 0.001
T = TypeVar("T")


class UntrustedFileError(NuvomError):
    """A file that decides what code runs could have been written by another user."""


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents, each created one owner-only."""
    target = Path(path)
    missing: list[Path] = []
    probe = target
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
        if _POSIX:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(directory, DIR_MODE)
    return target


def touch_private(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (its parents owner-only) 0600, or update its mtime if it exists."""
    target = Path(path)
    make_private_dir(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), FILE_MODE)
    try:
        if _POSIX and hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    os.utime(target)
    return target


def check_trusted_file(path: str | os.PathLike[str], project: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`UntrustedFileError` unless ``path`` (resolved, so a symlink
    counts where it points) lies inside ``project`` and, on POSIX, is owned by
    this process's user with no group or other write permission."""
    real = Path(path).resolve()
    base = Path(project).resolve()
    if real != base and base not in real.parents:
        raise UntrustedFileError(
            f"refusing to use the {what} {real}: it lies outside the project directory {base}; "
            "set it to a path inside the project (or run from the project directory)"
        )
    if not _POSIX:
        return
    info = os.stat(real)
    uid = os.geteuid()
    if info.st_uid != uid:
        raise UntrustedFileError(
            f"refusing to use the {what} {real}: it is owned by uid {info.st_uid}, not by this user "
            f"(uid {uid}), so another user could choose the code it imports; delete it and run "
            "'nuvom discover tasks' as this user to rebuild it"
        )
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise UntrustedFileError(
            f"refusing to use the {what} {real}: its mode {stat.S_IMODE(info.st_mode):o} lets other "
            f"users write it, so they could choose the code it imports; run 'chmod 600 {real}' after "
            "checking its content, or delete it and run 'nuvom discover tasks' to rebuild it"
        )


def retrying(fn: Callable[..., T], *args: object) -> T:
    """Call ``fn(*args)`` (``os.replace``, ``os.unlink``, ``os.open``), retrying
    a few times on ``PermissionError`` with a doubling pause from 1 ms.

    On Windows the lock of a reader clears within milliseconds; on POSIX a
    PermissionError is real and is raised after the last attempt (~0.13 s).
    """
    delay = _FIRST_BACKOFF
    for _ in range(_RETRIES - 1):
        try:
            return fn(*args)
        except PermissionError:
            time.sleep(delay)
            delay *= 2
    return fn(*args)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (a no-op on Windows, where
    directories cannot be opened for fsync)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: an owner-only temporary
    file in the same directory (created private if missing), flushed to disk,
    then renamed over the old file; a reader sees the old or the new content."""
    p = Path(path)
    make_private_dir(p.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        retrying(os.replace, tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)
