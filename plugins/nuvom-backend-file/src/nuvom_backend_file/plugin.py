"""Registers the ``file`` queue and result backend."""

from __future__ import annotations

import threading
from typing import Any

from nuvom_backend_file.backend import FileBackend
from nuvom_kernel import hookimpl
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.hookspecs import Register
from nuvom_kernel.settings import NuvomSettings

NAME = "file"
_DESCRIPTION = "Jobs and results as files in a directory (Maildir protocol); multi-process, no server."
_OPTIONS: dict[str, str] = {
    "dir": "path",
    "fsync": "bool",
    "fsync_claims": "bool",
    "lock_stale_secs": "number",
    "lock_timeout_secs": "number",
    "doorbell": "bool",
}
_EXPECTED = {"path": "a string (a directory path)", "bool": "true or false", "number": "a positive number"}

_lock = threading.Lock()
_open: dict[str, FileBackend] = {}


def make_backend(settings: NuvomSettings, options: dict[str, Any]) -> FileBackend:
    """One object per resolved directory in a process, shared by the queue and
    result roles, so finishing a job and storing its result is one write."""
    for key, value in options.items():
        expected = _OPTIONS.get(key)
        if expected is None:
            raise ConfigError(
                f"unknown option {key!r} for the file backend; allowed: {', '.join(sorted(_OPTIONS))}"
            )
        if not _valid(expected, value):
            raise ConfigError(f"file backend option {key!r} has value {value!r}; expected {_EXPECTED[expected]}")
    root = settings.resolve_path(options.get("dir", settings.file_backend_dir)).resolve()
    with _lock:
        backend = _open.get(str(root))
        if backend is None or backend.closed:
            backend = FileBackend(
                root,
                max_record_bytes=4 * settings.max_payload_bytes + 1024 * 1024,
                fsync=options.get("fsync", True),
                fsync_claims=options.get("fsync_claims", False),
                lock_stale_secs=float(options.get("lock_stale_secs", 30.0)),
                lock_timeout_secs=float(options.get("lock_timeout_secs", 60.0)),
                doorbell=options.get("doorbell", True),
            )
            _open[str(root)] = backend
        return backend


def _valid(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return isinstance(value, str) and bool(value.strip())


@hookimpl
def nuvom_register_queue_backends(register: Register) -> None:
    register(NAME, make_backend, description=_DESCRIPTION)


@hookimpl
def nuvom_register_result_backends(register: Register) -> None:
    register(NAME, make_backend, description=_DESCRIPTION)
