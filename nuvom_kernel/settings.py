"""Settings: ``NUVOM_*`` environment, ``.env``, ``[tool.nuvom]`` in ``pyproject.toml``.

Precedence, highest first: the real environment, ``.env`` in the project root
(it never overrides a variable that is really set), ``[tool.nuvom]`` in the
project's ``pyproject.toml``, then the defaults below.  :func:`load_settings`
also records where each value came from, for ``nuvom config``.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nuvom_kernel.errors import ConfigError
from nuvom_kernel.plugin_settings import (
    PluginSettings,
    claimed_keys,
    describe_allowed,
    read_tool_nuvom,
)
from nuvom_kernel.plugin_settings import resolve as resolve_plugin_settings

if TYPE_CHECKING:
    from nuvom_kernel.manager import NuvomPluginManager

ENV_PREFIX = "NUVOM_"

#: Variables read elsewhere (plugin manager, test switches), not settings fields.
OTHER_KNOWN_VARIABLES = {
    "NUVOM_LOAD_PLUGINS",
    "NUVOM_DISABLE_PLUGINS",
    "NUVOM_STRICT_PLUGINS",
    "NUVOM_TRACE_PLUGINS",
    "NUVOM_FULL_RELIABILITY",
    "NUVOM_RELIABILITY_SEED",
}

#: Nuvom 0.11 settings with no effect any more; they warn instead of failing.
LEGACY_KEYS = {
    "environment": "has no effect in Nuvom 1",
    "queue_maxsize": "has no effect: queues are bounded by storage, not a size",
    "sqlite_queue_path": "has no effect: queue and results share NUVOM_SQLITE_DB_PATH",
    "scheduler_backend": "has no effect: schedules are stored by the queue backend (docs/schedules.md)",
    "prometheus_port": ("has no effect: no installed plugin reads it; install nuvom-metrics-prometheus "
                        "(pip install 'nuvom[prometheus]'), whose worker metrics port it is"),
}


#: Upper bound of thread counts (``max_workers``): each is a thread (or a child process).
MAX_THREADS = 1024
#: Upper bound of durations a worker waits on: 30 days, well under the longest
#: wait ``threading`` accepts on Windows (``threading.TIMEOUT_MAX``, ~49 days).
MAX_WAIT_SECS = 30 * 86_400.0


class NuvomSettings(BaseSettings):
    """Every setting, its default and what it does (``docs/configuration.md``
    is checked against this class by a test)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=None, extra="ignore", case_sensitive=False
    )

    project_root: str | None = Field(None, description="Project root; relative paths are resolved against it (default: the working directory).")
    queue_backend: str = Field("sqlite", description="Queue backend component name (memory, file, sqlite, ...).")
    result_backend: str = Field("sqlite", description="Result backend component name.")
    serialization_backend: str = Field("json", description="Serializer for payloads and results.")
    executor: str = Field("thread", description="Default executor for workers (thread, process).")
    max_workers: int = Field(default_factory=lambda: min(os.cpu_count() or 1, MAX_THREADS), ge=1, le=MAX_THREADS, description="Concurrent jobs per worker (default: CPU count).")
    batch_size: int = Field(32, ge=1, le=1000, description="Most jobs claimed in one round trip.")
    job_timeout_secs: float | None = Field(300.0, gt=0, le=MAX_WAIT_SECS, allow_inf_nan=False, description="Default timeout per attempt in seconds; empty or 0 means none.")
    timeout_policy: Literal["retry", "fail", "ignore"] = Field("fail", description="What a timeout does by default.")
    retry_delay_secs: float = Field(5.0, ge=0, le=MAX_WAIT_SECS, allow_inf_nan=False, description="Default delay before a retry, in seconds.")
    max_retries: int = Field(0, ge=0, le=100_000, description="Default retries for tasks that do not set retries.")
    lease_secs: float = Field(30.0, ge=1, le=86_400, allow_inf_nan=False, description="Lease length; workers renew it every third of this.")
    sweep_interval_secs: float = Field(5.0, ge=0.1, le=3600, allow_inf_nan=False, description="How often a worker returns expired leases to the queue.")
    max_lease_expiries: int = Field(3, ge=0, le=1000, description="Times a job's lease may expire while it runs (its worker died) before it is dead; these never use its retries.")
    max_unrecorded: int = Field(16, ge=0, le=10000, description="Finished outcomes (and recorded starts) a worker may hold beyond its concurrency before a round trip; a killed worker re-runs at most concurrency + this many jobs. 0 is the strictest bound.")
    poll_interval_secs: float = Field(1.0, ge=0.01, le=3600, allow_inf_nan=False, description="Longest sleep of an idle worker between polls (wake-ups cut it short).")
    manifest_path: str = Field(".nuvom/manifest.json", description="Where task discovery writes the manifest.")
    max_payload_bytes: int = Field(1_048_576, ge=1024, le=1 << 30, description="Largest encoded args/kwargs or result accepted.")
    result_ttl_secs: float | None = Field(7 * 24 * 3600.0, ge=1, le=100 * 365 * 86_400, allow_inf_nan=False, description="Finished jobs older than this are purged by workers; empty or 0 keeps them.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field("INFO", description="Log level of the nuvom logger, applied by the nuvom command (as a library, Nuvom leaves logging to you).")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):  # type: ignore[no-untyped-def,override]
        # load_settings() layers environment, .env and pyproject itself so that
        # it can report where each value came from; the class validates only.
        return (init_settings,)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("timeout_policy", "queue_backend", "result_backend", "serialization_backend", "executor", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("job_timeout_secs", "result_ttl_secs", mode="before")
    @classmethod
    def _none_if_empty(cls, value: Any) -> Any:
        if value in ("", None, "none", "None", 0, "0"):
            return None
        return value

    def resolve_path(self, value: str, root: str | os.PathLike[str] | None = None) -> Path:
        """A configured path, relative to the project root unless absolute."""
        p = Path(value).expanduser()
        if p.is_absolute():
            return p
        return Path(root or self.project_root or project_root()) / p


@dataclass
class LoadedSettings:
    settings: NuvomSettings
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    root: Path = field(default_factory=Path.cwd)
    #: each plugin's validated options by section (when loaded with ``plugins=``)
    plugins: dict[str, PluginSettings] = field(default_factory=dict)


#: What marks a project's root, looked for from the working directory upwards (like git).
ROOT_MARKERS = (".nuvom", "pyproject.toml")


def find_project_root(start: Path | None = None) -> tuple[Path, str | None]:
    """The nearest directory from ``start`` (the working directory) upwards holding
    ``.nuvom/`` or ``pyproject.toml``, and which; ``(start, None)`` if none does."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        for marker in ROOT_MARKERS:
            if (directory / marker).exists():
                return directory, marker
    return here, None


def project_root(environ: dict[str, str] | None = None) -> Path:
    """The project root: ``NUVOM_PROJECT_ROOT``, else found by :func:`find_project_root`."""
    env = (os.environ if environ is None else environ).get("NUVOM_PROJECT_ROOT")
    return Path(env).resolve() if env else find_project_root()[0]


def project_root_source(environ: dict[str, str]) -> str:
    """How :func:`project_root` chose the root, for ``nuvom config``."""
    if environ.get("NUVOM_PROJECT_ROOT"):
        return "environment"
    _, marker = find_project_root()
    if marker is None:
        return "working directory (no .nuvom/ or pyproject.toml in it or above it)"
    return f"nearest {marker + '/' if marker == '.nuvom' else marker} up from the working directory"


def read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def _read_pyproject(path: Path) -> dict[str, Any]:
    """The kernel's keys of ``[tool.nuvom]`` (plugins' sub-tables are theirs)."""
    table = read_tool_nuvom(path)
    return {k.replace("-", "_").lower(): v for k, v in table.items() if not isinstance(v, dict)}


def _describe_allowed(field_name: str) -> str:
    return describe_allowed(NuvomSettings, field_name).replace("(or empty for none)", "(or empty or 0 for none)")


#: Setting warnings already logged by this process (each is logged once).
_LOGGED_NOTES: set[str] = set()


def load_settings(
    root: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    plugins: NuvomPluginManager | None = None,
) -> LoadedSettings:
    """Read every source, validate, and say where each value came from.

    Raises :class:`ConfigError` naming the key, the value and what is allowed.
    Unknown ``NUVOM_*`` keys produce warnings with a suggestion (also logged
    once per process on the ``nuvom.settings`` logger).  With ``plugins``,
    the options every plugin declared are validated too
    (:mod:`nuvom_kernel.plugin_settings`), and their variables are not unknown.
    """
    env = dict(os.environ if environ is None else environ)
    root_path = Path(root).resolve() if root is not None else project_root(env)
    declarations = plugins.settings_declarations() if plugins is not None else []
    claimed, claimed_prefixes = claimed_keys(declarations)
    names = list(NuvomSettings.model_fields)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []

    layers: list[tuple[str, dict[str, Any]]] = [
        ("pyproject.toml [tool.nuvom]", _read_pyproject(root_path / "pyproject.toml")),
    ]
    dotenv = {k: v for k, v in read_dotenv(root_path / ".env").items() if k.upper().startswith(ENV_PREFIX)}
    layers.append((".env", {k[len(ENV_PREFIX):].lower(): v for k, v in dotenv.items() if k.upper() not in {e.upper() for e in env}}))
    layers.append(("environment", {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}))
    if overrides:
        layers.append(("command line", {k: v for k, v in overrides.items() if v is not None}))

    for origin, layer in layers:
        for key, value in layer.items():
            shown = (ENV_PREFIX + key.upper()) if origin in ("environment", ".env") else key
            if key in names:
                values[key] = value
                sources[key] = origin
            elif key in claimed or (origin in ("environment", ".env") and key.startswith(claimed_prefixes)):
                continue  # a plugin's setting (also a 0.11 name a plugin took over): validated below
            elif key in LEGACY_KEYS:
                notes.append(f"{shown} ({origin}) {LEGACY_KEYS[key]}")
            elif origin in ("environment", ".env") and shown in OTHER_KNOWN_VARIABLES:
                continue
            else:
                prefix = ENV_PREFIX if origin in ("environment", ".env") else ""
                match = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                hint = f"; did you mean {prefix}{match[0].upper() if prefix else match[0]}?" if match else ""
                notes.append(f"unknown setting {shown} in {origin}{hint}")

    if not values.get("project_root"):
        values["project_root"] = str(root_path)
        sources["project_root"] = "argument" if root is not None else project_root_source(env)
    try:
        settings = NuvomSettings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else "?"
            origin = sources.get(key, "default")
            problems.append(
                f"{ENV_PREFIX}{key.upper()}={values.get(key)!r} (from {origin}) is invalid: "
                f"expected {_describe_allowed(key) if key in NuvomSettings.model_fields else err['msg']}"
            )
        raise ConfigError("; ".join(problems)) from None
    for name in names:
        sources.setdefault(name, "default")
    plugin_settings = {}
    if plugins is not None:
        plugin_settings = resolve_plugin_settings(declarations, root_path, env, read_dotenv(root_path / ".env"),
                                                  plugins.plugin_options, notes, overrides)
    for note in notes:  # one readable log line each, once per process (not a UserWarning with a source line)
        if note not in _LOGGED_NOTES:
            _LOGGED_NOTES.add(note)
            logging.getLogger("nuvom.settings").warning("%s", note)
    return LoadedSettings(settings=settings, sources=sources, warnings=notes, root=root_path, plugins=plugin_settings)
