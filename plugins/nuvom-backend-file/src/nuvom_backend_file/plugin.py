"""Registers the ``file`` store: queue, job store, results and worker registry.

Each app gets its own :class:`FileBackend` over the directory and uses it
for every role; two apps on one directory are independent objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from nuvom_kernel import hookimpl
from nuvom_kernel.settings import NuvomSettings
from nuvom_support.options import coerce_options

if TYPE_CHECKING:  # the implementation is imported when a backend is made, not when the plugin loads
    from nuvom_backend_file.backend import FileBackend

NAME = "file"
_DESCRIPTION = "Jobs and results as files in a directory (Maildir protocol); multi-process, no server."

ROLES = ("queue", "jobs", "results", "workers", "schedules")


class FileOptions(BaseModel):
    """The file backend's settings (section ``file``: ``NUVOM_FILE__DIR``,
    ``[tool.nuvom.file]``; ``NUVOM_FILE_BACKEND_DIR`` works too)."""

    model_config = ConfigDict(extra="forbid")

    dir: str = Field(".nuvom/jobs", min_length=1, description="The directory; relative to the project root.")
    fsync: StrictBool = Field(True, description="fsync new jobs, results, cancels and retries before publishing them.")
    fsync_claims: StrictBool = Field(False, description="Also fsync claim, lease and progress rewrites.")
    lock_stale_secs: float = Field(30.0, gt=0, le=86400, allow_inf_nan=False,
                                   description="A per-job lock older than this belongs to a dead process.")
    lock_timeout_secs: float = Field(60.0, gt=0, le=86400, allow_inf_nan=False,
                                     description="How long an operation waits for a job another process is changing.")
    doorbell: StrictBool = Field(True, description="Wake idle workers over UDP on 127.0.0.1 when a job arrives.")

    @field_validator("fsync", "fsync_claims", "doorbell", mode="before")
    @classmethod
    def _bool_from_text(cls, value: Any) -> Any:
        # environment values are text; TOML booleans stay booleans, other types are refused
        if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
            return _BOOL_TEXT[value.strip().lower()]
        return value


_BOOL_TEXT = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
ENV_NAMES = {"dir": "NUVOM_FILE_BACKEND_DIR"}


def options_model(options: FileOptions | dict[str, Any]) -> FileOptions:
    """``options`` as the kernel passes them (validated), or a plain table (``nuvom plugin test --option``)."""
    return coerce_options(FileOptions, options, NAME)


def make_backend(settings: NuvomSettings, options: FileOptions | dict[str, Any]) -> FileBackend:
    """A new backend for the configured directory (the app owns and closes it);
    the app uses it for both the queue and result roles, so finishing a job
    and storing its result is one write."""
    from nuvom_backend_file.backend import FileBackend

    opts = options_model(options)
    root = settings.resolve_path(opts.dir).resolve()
    return FileBackend(
        root,
        max_record_bytes=4 * settings.max_payload_bytes + 1024 * 1024,
        fsync=opts.fsync,
        fsync_claims=opts.fsync_claims,
        lock_stale_secs=opts.lock_stale_secs,
        lock_timeout_secs=opts.lock_timeout_secs,
        doorbell=opts.doorbell,
    )


@hookimpl
def nuvom_register_settings(register: Any) -> None:
    register(NAME, FileOptions, env=ENV_NAMES)


@hookimpl
def nuvom_register_storage(register: Any) -> None:
    register(NAME, make_backend, roles=ROLES, description=_DESCRIPTION)
