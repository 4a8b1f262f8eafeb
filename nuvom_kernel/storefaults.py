"""Environment faults of a job store turned into one-line errors.

A full disk, a file owned by another user, a read-only file system or a
directory where the database file should be reach users as a
:class:`~nuvom_kernel.errors.StoreError` subclass whose message names the path
and the fix, instead of an ``OSError`` traceback.  Backends call
:func:`store_error` where they touch the file system; the CLI and ``.delay()``
use it as a last resort for an ``OSError`` a backend let through.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from nuvom_kernel.errors import StoreAccessError, StoreError, StoreFullError

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DENIED = {errno.EACCES, errno.EPERM}


def _owner_hint(path: Path) -> str:
    """``owned by uid 1001, mode 600; this process runs as uid 1000`` (POSIX), or ""."""
    if os.name != "posix":
        return ""
    probe = path
    while True:  # the path, or its nearest ancestor this user may stat
        try:
            info = os.stat(probe)
            break
        except OSError:
            if probe.parent == probe:
                return ""
            probe = probe.parent
    where = "" if probe == path else f"its folder {probe} is "
    return (f" ({where}owned by uid {info.st_uid}, mode {info.st_mode & 0o777:o}; this process runs as "
            f"uid {os.geteuid()})")


def store_error(exc: OSError, path: str | os.PathLike[str] | None = None, *,
                what: str = "the job store", setting: str | None = None) -> StoreError:
    """The :class:`StoreError` for ``exc`` (``exc`` itself if it already is one).

    ``path`` defaults to the path the OS named; ``setting`` (e.g.
    ``NUVOM_SQLITE_DB_PATH``) is suggested as the way to choose another place.
    """
    if isinstance(exc, StoreError):
        return exc
    if path is None and not exc.filename:
        return StoreError(f"{what} {exc.strerror or exc}; check the disk and the permissions of the project's .nuvom",
                          None, exc.errno)
    target = Path(path if path is not None else exc.filename)
    elsewhere = f", or set {setting} to another path" if setting else ""
    code = exc.errno
    if code in _FULL:
        return StoreFullError(
            f"{what} {target}: no space left on the device; free some space (Nuvom keeps what it "
            f"stored and carries on once there is room){elsewhere}", target, code)
    if code in _DENIED or isinstance(exc, PermissionError):
        return StoreAccessError(
            f"{what} {target}: permission denied{_owner_hint(target)}; run Nuvom as the owner, or "
            f"give this user read and write access (chown/chmod){elsewhere}", target, code)
    if code == errno.EROFS:
        return StoreAccessError(
            f"{what} {target} is on a read-only file system; put it on a writable disk{elsewhere}", target, code)
    if code == errno.EISDIR or isinstance(exc, IsADirectoryError):
        return StoreAccessError(
            f"{what} {target} is a directory, not a file; give the path of a file inside it "
            f"(e.g. {target / 'result.db'}){elsewhere}", target, code)
    if code == errno.ENOTDIR or isinstance(exc, NotADirectoryError):
        return StoreAccessError(
            f"{what} {target}: a part of the path is a file, not a directory{elsewhere}", target, code)
    reason = exc.strerror or str(exc)
    return StoreError(f"{what} {target}: {reason}; check the disk and the path{elsewhere}", target, code)
