"""Refuse database paths on network file systems.

SQLite's WAL mode needs shared memory and byte-range locks that NFS, SMB and
friends do not provide reliably: on such a share two workers can both "claim"
a job, or the file can be corrupted.  We detect the common cases and refuse
them with a clear message instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: File-system types (as in /proc/mounts) that are network or remote mounts.
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "sshfs", "fuse.sshfs",
    "afs", "ncpfs", "9p", "fuse.rclone", "fuse.s3fs", "glusterfs", "fuse.glusterfs",
    "ceph", "fuse.ceph", "lustre", "davfs", "fuse.davfs2",
})


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_type(path: str, mounts_text: str) -> str | None:
    """The file-system type of the mount holding ``path`` (an absolute,
    resolved POSIX path), read from a /proc/mounts-style table."""
    best: tuple[int, str] | None = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        prefix = point.rstrip("/") + "/"
        if (path == point or path.startswith(prefix) or point == "/") and (best is None or len(point) >= best[0]):
            best = (len(point), fields[2])
    return best[1] if best else None


def _existing_ancestor(path: Path) -> Path:
    current = path
    while not current.exists() and current.parent != current:
        current = current.parent
    return current.resolve()


def network_share_reason(
    path: str | os.PathLike[str],
    *,
    platform: str | None = None,
    mounts_text: str | None = None,
) -> str | None:
    """Why ``path`` is on a network share, or None if it looks local.

    Linux: the mount holding the path (from ``/proc/mounts``, or
    ``mounts_text`` in tests) has a type in :data:`NETWORK_FS_TYPES`.
    Windows: a UNC path (``\\\\server\\share``) or a mapped network drive.
    Other systems are not checked.
    """
    platform = sys.platform if platform is None else platform
    text = str(path)
    if platform == "win32" or text.startswith("\\\\"):
        if text.startswith(("\\\\", "//")) and not text.startswith(("\\\\?\\", "\\\\.\\")):
            return f"{text} is a UNC network path"
        if text.startswith("\\\\?\\UNC\\"):
            return f"{text} is a UNC network path"
        if platform == "win32" and sys.platform == "win32" and len(text) >= 2 and text[1] == ":":
            import ctypes

            drive_remote = 4
            if ctypes.windll.kernel32.GetDriveTypeW(text[:2] + "\\") == drive_remote:  # type: ignore[attr-defined]
                return f"drive {text[:2]} is a mapped network drive"
        return None
    if not platform.startswith("linux"):
        return None
    if mounts_text is None:
        try:
            with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
                mounts_text = f.read()
        except OSError:
            return None
        resolved = str(_existing_ancestor(Path(text)))
    else:
        resolved = text
    fs_type = mount_type(resolved, mounts_text)
    if fs_type is not None and (fs_type in NETWORK_FS_TYPES or fs_type.startswith(("nfs", "smb"))):
        return f"{text} is on a {fs_type} network file system"
    return None
