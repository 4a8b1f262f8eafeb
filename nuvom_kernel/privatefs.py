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
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from nuvom_kernel.errors import NuvomError

DIR_MODE = 0o700
FILE_MODE = 0o600
_POSIX = os.name == "posix"


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
