"""Every error Nuvom raises on purpose.  Messages name the problem and the fix."""

from __future__ import annotations


class NuvomError(Exception):
    """Base class of all Nuvom errors."""


class ConfigError(NuvomError):
    """A setting has a value Nuvom cannot use."""


class PluginError(NuvomError):
    """A plugin could not be loaded or does something the kernel refuses."""


class DuplicateComponentError(PluginError):
    """Two plugins registered the same component name."""


class ComponentNotFoundError(PluginError):
    """The configured component is not provided by any loaded plugin."""


class CapabilityError(PluginError):
    """The selected backend does not provide a storage role an operation needs."""


class InvalidIdError(NuvomError, ValueError):
    """An id or name is unsafe to use as a file name or SQL value."""


class ScheduleNotFoundError(NuvomError):
    """No schedule with that id exists in the configured backend."""


class JobNotFoundError(NuvomError, KeyError):
    """No job with that id exists in the configured backend."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "job not found"


class InvalidStateError(NuvomError):
    """The operation does not apply to the job in its current state."""


class TaskNotFoundError(NuvomError, LookupError):
    """No task with that name is registered."""


class PayloadError(NuvomError, ValueError):
    """A job's arguments or result cannot be serialised or exceed the size limit."""


class CorruptJobError(NuvomError):
    """Stored job data cannot be decoded."""


class JobTimeoutError(NuvomError, TimeoutError):
    """A job ran longer than its ``timeout_secs``."""


class JobFailedError(NuvomError):
    """Raised by ``handle.result()`` when the job's task raised and the original
    exception type cannot be rebuilt; carries the remote type, message and traceback."""

    def __init__(self, type_name: str, message: str, traceback: str = "", job_id: str | None = None):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = traceback
        self.job_id = job_id


class JobCancelledError(NuvomError):
    """Raised by ``handle.result()`` when the job was cancelled."""


class JobDeadError(NuvomError):
    """Raised by ``handle.result()`` when the job was dead-lettered."""


class Retry(Exception):  # noqa: N818 - the public spelling is ``raise nuvom.Retry(...)``
    """Raise inside a task to ask for another attempt, optionally after ``delay`` seconds."""

    def __init__(self, delay: float | None = None, reason: str | None = None):
        super().__init__(reason or "retry requested")
        self.delay = delay
        self.reason = reason


class StoreError(NuvomError, OSError):
    """The job store (a database file, a queue directory) cannot be used as it is.

    The message names the path and the fix; ``path`` holds the path.  Raised
    by ``.delay()``, the CLI and the worker instead of raw ``OSError`` or
    ``sqlite3`` errors.  It is also an ``OSError``, so code that caught those
    keeps working.
    """

    def __init__(self, message: str, path: object = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.errno = errno  # type: ignore[assignment]

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "the job store cannot be used"


class StoreAccessError(StoreError):
    """Permission denied, a read-only file or file system, or a directory where a file belongs."""


class StoreFullError(StoreError):
    """The disk (or quota) holding the store is full."""


class StoreCorruptError(StoreError):
    """The store's data is damaged (e.g. ``PRAGMA quick_check`` fails)."""


class StoreReplacedError(StoreError):
    """The store was removed or replaced while this process had it open."""
