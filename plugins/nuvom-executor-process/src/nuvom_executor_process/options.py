"""The executor's options: ``[plugins.settings.nuvom-executor-process]``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from nuvom_kernel.errors import ConfigError

TABLE = "[plugins.settings.nuvom-executor-process]"


@dataclass(frozen=True)
class ProcessOptions:
    """See docs/executor-process.md for what each one means."""

    #: replace a child after it has run this many jobs (None: never)
    max_tasks_per_child: int | None = None
    #: replace a child after a job once its peak resident memory exceeds this many MB (None: never)
    max_memory_per_child: float | None = None
    #: time a child may take to start and import a task's module before the job's timeout clock starts
    start_timeout_secs: float = 60.0
    #: after terminate(), how long a child may take to exit before it is killed
    terminate_grace_secs: float = 0.5
    #: how long a graceful stop (shutdown, recycling) waits for an idle child to exit
    stop_timeout_secs: float = 5.0

    @classmethod
    def from_mapping(cls, options: dict[str, Any]) -> ProcessOptions:
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} in {TABLE}; allowed: {', '.join(sorted(allowed))}"
            )
        values: dict[str, Any] = {}
        for name in ("max_tasks_per_child", "max_memory_per_child"):
            value = options.get(name)
            if value is None or value == 0:
                values[name] = None  # 0 reads naturally as "no limit"
                continue
            numeric = _number(name, value)
            if numeric < 0 or (name == "max_tasks_per_child" and numeric != int(numeric)):
                kind = "a whole number" if name == "max_tasks_per_child" else "a number of MB"
                raise ConfigError(f"{name}={value!r} in {TABLE} is invalid: use {kind} > 0, or 0 for no limit")
            values[name] = int(numeric) if name == "max_tasks_per_child" else float(numeric)
        for name in ("start_timeout_secs", "terminate_grace_secs", "stop_timeout_secs"):
            if name in options:
                numeric = _number(name, options[name])
                if numeric <= 0:
                    raise ConfigError(f"{name}={options[name]!r} in {TABLE} is invalid: use a number of seconds > 0")
                values[name] = float(numeric)
        return cls(**values)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{name}={value!r} in {TABLE} is invalid: use a number")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} in {TABLE} is invalid: use a number")
