"""The interfaces of the components other than storage: executors, discoverers,
serializers, and the context a command plugin receives.  Storage roles are in
:mod:`nuvom_kernel.contracts`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol, runtime_checkable

from nuvom_kernel.models import ErrorInfo, Job, TaskInfo

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.errors import NuvomError


@dataclass
class WorkItem:
    """One attempt to run, handed to an executor.

    ``call`` runs the task in this process (thread executors use it);
    executors that run elsewhere use ``job`` (task name, args) and
    ``modules`` (what to import to find the task) instead.
    """

    job: Job
    call: Callable[[], Any]
    timeout_secs: float | None
    modules: Sequence[str] = ()
    is_async: bool = False
    #: the attempt's :class:`~nuvom_kernel.context.JobContext` in the worker; an
    #: executor running the task elsewhere forwards progress to it
    context: Any = None
    #: plugins that wrap the task call (``nuvom_execute_job``); an executor running
    #: the task in another process loads them there (``NuvomPluginManager.load(only=...)``)
    plugins: Sequence[str] = ()


@dataclass
class WorkResult:
    """How an attempt ended, reported by the executor through its callback.

    ``timed_out`` with ``still_running`` means the deadline passed but the
    code could not be stopped (threads); the executor reports the same job a
    second time with ``still_running=False`` when it finally ends, and that
    late report's value is discarded.
    """

    job_id: str
    ok: bool
    value: Any = None
    error: ErrorInfo | None = None
    exception: BaseException | None = None
    timed_out: bool = False
    still_running: bool = False
    cancelled: bool = False
    crashed: bool = False
    started_at: float = 0.0
    ended_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Executor(Protocol):
    """Runs attempts concurrently; reports each through ``done`` exactly once
    (twice only for a soft timeout, see :class:`WorkResult`)."""

    name: str

    def start(self, concurrency: int) -> None: ...

    def free_slots(self) -> int: ...

    def submit(self, item: WorkItem, done: Callable[[WorkResult], None]) -> None: ...

    def cancel(self, job_id: str) -> bool:
        """Ask a running attempt to stop; True if the request was delivered."""
        ...

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None: ...


@dataclass
class DiscoveryReport:
    """What a discoverer found: tasks, and the problems it could not use."""

    tasks: list[TaskInfo] = field(default_factory=list)
    #: each: {"path": relative path, "line": int | None, "kind": short code, "message": text}
    problems: list[dict[str, Any]] = field(default_factory=list)
    files_scanned: int = 0
    files_parsed: int = 0
    #: per-file cache entries keyed by relative path (size, mtime, hash, what was
    #: found); handed back as ``cache`` on the next call so unchanged files are
    #: not parsed again.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


@runtime_checkable
class Discoverer(Protocol):
    """Finds tasks in a project tree without running it."""

    def discover(
        self,
        root: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        cache: Mapping[str, dict[str, Any]] | None = None,
    ) -> DiscoveryReport: ...


@runtime_checkable
class Serializer(Protocol):
    """Turns JSON-like values into bytes and back.  Never executes code."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


@runtime_checkable
class CommandContext(Protocol):
    """What ``nuvom_register_commands`` hands a command plugin as ``cli``: one
    way to reach the app, print, and fail with the exit codes every ``nuvom``
    command uses (docs/cli.md).  The CLI plugin (``nuvom-cli``) provides it."""

    EXIT_OK: ClassVar[int]  # 0
    EXIT_FAILURE: ClassVar[int]  # 1: the operation failed
    EXIT_USAGE: ClassVar[int]  # 2: bad arguments, bad configuration, a bad id
    EXIT_NOT_FOUND: ClassVar[int]  # 3: the job (or other object) does not exist

    #: rich consoles: ``console`` writes to stdout, ``err`` to stderr
    console: Any
    err: Any

    def app(self, **overrides: Any) -> Nuvom:
        """The invocation's app (built once); a bad setting exits with code 2."""
        ...

    def fail(self, message: str, code: int = 1) -> NoReturn:
        """Print ``error: message`` on stderr and exit with ``code``."""
        ...

    def guard(self, exc: NuvomError) -> NoReturn:
        """Fail with the exit code that fits ``exc`` (not found 3, bad input 2, else 1)."""
        ...

    def print_json(self, data: Any) -> None:
        """``data`` as indented JSON on stdout (``--json`` output)."""
        ...

    def say(self, markup: str, plain: str, event: str, level: int = 20, **fields: Any) -> None:
        """A line for the operator on stderr (``markup``), or a log record with
        ``event`` and ``fields`` when a plugin formats the logs (``plain``)."""
        ...

    def process_local_backend(self, app: Nuvom) -> bool:
        """True if ``app``'s store lives in this command's process only (the
        memory backend): nothing another process stored is visible to it."""
        ...
