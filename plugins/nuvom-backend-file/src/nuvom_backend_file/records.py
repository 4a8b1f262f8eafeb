"""The on-disk record: a fixed header, then a JSON payload.

``MAGIC (4) | version u16 | flags u16 | payload length u32 | CRC32 u32 | payload``

The header lets a reader tell a whole record from a torn, truncated,
bit-flipped or foreign file without trusting anything in it: the length is
compared with the real file size *before* anything is allocated, and the
checksum covers the payload.  Files are written to ``tmp/``, optionally
fsynced, then published with ``os.replace`` so a reader sees the old record
or the new one, never a mix.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from nuvom_kernel.errors import CorruptJobError, PayloadError
from nuvom_kernel.models import Job
from nuvom_kernel.storefaults import store_error
from nuvom_support.files import retrying

MAGIC = b"NVJ\x01"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sHHII")
FILE_MODE = 0o600
DIR_MODE = 0o700

#: PermissionError from replace/unlink/open on Windows is usually a sharing
#: violation (another process has the file open for a moment): retry briefly.

T = TypeVar("T")


class JobRecord(BaseModel):
    """What a job file holds: the job and its fencing counter.

    ``fence`` is the last token handed out for this job; a claim increments
    it, nothing else changes it, so tokens only ever grow.
    """

    fence: int = 0
    job: Job


def encode(record: JobRecord, limit: int) -> bytes:
    payload = record.model_dump_json().encode()
    if len(payload) > limit:
        raise PayloadError(
            f"job {record.job.id} encodes to {len(payload)} bytes, over the file backend's "
            f"record limit of {limit} bytes (4 x NUVOM_MAX_PAYLOAD_BYTES + 1 MiB); "
            "pass smaller arguments/results or raise NUVOM_MAX_PAYLOAD_BYTES"
        )
    return HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes, file_size: int) -> JobRecord:
    """Decode a whole file's bytes; :class:`CorruptJobError` says what is wrong."""
    if file_size < HEADER.size:
        raise CorruptJobError(f"truncated: {file_size} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, flags, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptJobError(f"bad magic {magic!r} (expected {MAGIC!r}): not a Nuvom job file")
    if version != FORMAT_VERSION:
        raise CorruptJobError(f"format version {version} is not supported (this build reads {FORMAT_VERSION})")
    if flags != 0:
        raise CorruptJobError(f"unknown header flags {flags:#06x} (format {FORMAT_VERSION} defines none)")
    if length != file_size - HEADER.size:
        raise CorruptJobError(
            f"length header says {length} payload bytes but the file holds {file_size - HEADER.size} "
            "(torn or truncated write)"
        )
    payload = data[HEADER.size:]
    if zlib.crc32(payload) != crc:
        raise CorruptJobError(f"checksum mismatch: header {crc:#010x}, payload {zlib.crc32(payload):#010x}")
    try:
        return JobRecord.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise CorruptJobError(f"checksum ok but the payload is not a valid job ({where}: {first['msg']})") from None


def read_record(path: str | Path, limit: int) -> JobRecord:
    """Read and decode ``path``.  ``FileNotFoundError`` passes through.

    The size comes from ``fstat`` of the open file, so a lying length header
    never makes us allocate more than the file really holds, and a file over
    ``limit`` is refused without reading it.
    """
    fd = retrying(os.open, path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        if size > limit + HEADER.size:
            raise CorruptJobError(f"file is {size} bytes, over the record limit of {limit} bytes")
        chunks = []
        remaining = size
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    return decode(data, len(data))


def write_file(tmp_dir: str | Path, dest: str | Path, data: bytes, *, fsync: bool) -> None:
    """Write ``data`` to a fresh file in ``tmp_dir``, then ``os.replace`` it to ``dest``."""
    publish_file(stage_file(tmp_dir, data, fsync=fsync), dest)


def publish_file(tmp: str | Path, dest: str | Path) -> None:
    """Move a file written by :func:`stage_file` into place (removed if that fails)."""
    try:
        retrying(os.replace, tmp, dest)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _tmp_prefix() -> str:
    return f"{secrets.token_hex(6)}-"


#: temp names are a random per-process prefix and a counter: unique across
#: processes (48 random bits) without a ``getrandom`` call per file
_TMP_PREFIX = _tmp_prefix()
_TMP_COUNTER = itertools.count()
if hasattr(os, "register_at_fork"):
    def _reseed() -> None:
        global _TMP_PREFIX
        _TMP_PREFIX = _tmp_prefix()

    os.register_at_fork(after_in_child=_reseed)


def stage_file(tmp_dir: str | Path, data: bytes, *, fsync: bool) -> str:
    """Write ``data`` to a fresh file in ``tmp_dir`` (fsynced if asked); return its path."""
    tmp, fd = stage_open(tmp_dir, data)
    try:
        if fsync:
            os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise _store_error(exc, tmp_dir) from exc
        raise
    os.close(fd)
    return tmp


def _store_error(exc: OSError, tmp_dir: str | Path) -> OSError:
    """A full disk or a directory this user may not write, as a one-line
    :class:`~nuvom_kernel.errors.StoreError` (still an ``OSError``) naming the
    queue directory (the parent of ``tmp/``)."""
    return store_error(exc, Path(tmp_dir).parent, what="the file backend's queue directory",
                       setting="NUVOM_FILE_BACKEND_DIR")

def stage_open(tmp_dir: str | Path, data: bytes) -> tuple[str, int]:
    """Write ``data`` to a fresh file in ``tmp_dir`` and leave it open: the
    caller fsyncs (after renaming it, on POSIX) and closes the descriptor."""
    tmp = os.path.join(tmp_dir, f"{_TMP_PREFIX}{next(_TMP_COUNTER):x}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, FILE_MODE)
    except OSError as exc:  # a full disk, a directory this user may not write: one clear line
        raise _store_error(exc, tmp_dir) from exc
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)  # the umask may have removed bits we need; never add any
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException as exc:
        os.close(fd)
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise _store_error(exc, tmp_dir) from exc
        raise
    return tmp, fd


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)`` from the C library (not in :mod:`os`); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_SYNCFS = _load_syncfs()


#: POSIX can rename a file that is still open, so a new file can be published
#: first and fsynced after: on ext4, XFS and btrfs that one flush commits the
#: rename with the inode, and the directory fsync that POSIX asks for next finds
#: nothing left to do.  Windows refuses to rename an open file (Python opens
#: files without FILE_SHARE_DELETE), so there the file is fsynced first.
RENAME_OPEN = os.name == "posix"


def has_syncfs() -> bool:
    """True where one call makes a whole batch durable (Linux)."""
    return _SYNCFS is not None


def fsync_path(path: str | Path) -> None:
    """fsync one file by name (opened for writing: Windows flushes only writable handles)."""
    fd = retrying(os.open, path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_data(root: Path, paths: Sequence[str | Path], pool: Executor | None = None) -> None:
    """Make the data of the written files ``paths`` durable, together: the group commit.

    On Linux, a batch costs one ``syncfs(2)`` of the file system holding
    ``root`` (it also flushes other processes' dirty data there, but it is one
    device flush however many files the batch wrote).  Elsewhere, and for a
    single file, each file is fsynced; many files are fsynced from ``pool`` so
    the flushes overlap on the device.
    """
    if not paths:
        return
    if len(paths) > 1 and _SYNCFS is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                code = ctypes_errno()
                raise OSError(code, f"syncfs failed: {os.strerror(code)}", str(root))
        finally:
            os.close(fd)
        return
    if len(paths) > 1 and pool is not None:
        list(pool.map(fsync_path, paths))
        return
    for path in paths:
        fsync_path(path)


def ctypes_errno() -> int:
    import ctypes

    return ctypes.get_errno() or errno.EIO


def sync_dirs(dirs: Iterable[Path]) -> None:
    """Make renames into (and out of) ``dirs`` durable: fsync each directory.

    POSIX only: Windows cannot open a directory for flushing; NTFS journals
    the rename itself and commits its log within seconds.
    """
    if os.name == "nt":
        return
    for directory in dict.fromkeys(dirs):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def quarantine(path: Path, quarantine_dir: Path, reason: str) -> Path | None:
    """Move a bad file aside with a ``.reason`` file next to it.

    Returns the new path, or None if the file was already gone (another
    process quarantined or moved it first).
    """
    parent = path.parent.name
    target = quarantine_dir / f"{parent}-{path.name}.{secrets.token_hex(3)}"
    try:
        retrying(os.replace, path, target)
    except FileNotFoundError:
        return None
    note = (
        f"file: {path}\nreason: {reason}\nquarantined_at: {time.time():.3f}\n"
        f"pid: {os.getpid()}\nplatform: {sys.platform}\n"
    )
    try:
        write_file(quarantine_dir, quarantine_dir / f"{target.name}.reason", note.encode(), fsync=False)
    except OSError:
        pass  # the file itself is safely aside; a missing note must not stop the worker
    return target


def _unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
