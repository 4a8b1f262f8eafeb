"""Task options that plugins declare (``nuvom_register_task_options``).

``@task(rate_limit="10/s")`` works once a plugin declared ``rate_limit``; the
value is validated against the declared type and travels on the task
(``task.plugin_options``) and on every job (``job.options``).  Options the
kernel knows are checked without loading any plugin.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from nuvom_kernel.errors import PluginError

#: Options the kernel itself gives meaning to (docs/execution.md).
KERNEL_TASK_OPTIONS = (
    "name", "retries", "retry_delay_secs", "backoff", "backoff_max_secs", "jitter", "retry_on",
    "timeout_secs", "timeout_policy", "store_result", "priority", "queue", "tags", "description",
    "category", "before_job", "after_job", "on_error", "unique", "executor", "max_lease_expiries",
)
#: Per-call overrides accepted by ``.options()`` besides task options.
CALL_OPTIONS = ("eta", "countdown", "unique_key", "job_id")


@dataclass(frozen=True)
class TaskOptionDeclaration:
    name: str
    plugin: str
    adapter: TypeAdapter[Any]
    annotation: Any
    description: str | None = None


def task_option(name: str, annotation: Any, plugin: str, description: str | None) -> TaskOptionDeclaration:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise PluginError(f"plugin {plugin!r} declared task option {name!r}: use a Python identifier like 'rate_limit'")
    if name in KERNEL_TASK_OPTIONS or name in CALL_OPTIONS:
        raise PluginError(f"plugin {plugin!r} declared task option {name!r}, which the kernel already defines")
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r}: task option {name!r} has a type pydantic cannot check: {exc}") from exc
    return TaskOptionDeclaration(name, plugin, adapter, annotation, description)


def validate_plugin_options(given: Mapping[str, Any], declared: Mapping[str, TaskOptionDeclaration],
                            known: Collection[str], where: str) -> dict[str, Any]:
    """Check options the kernel does not know against the declared ones.

    Raises ``TypeError`` for an option nobody declared (with a suggestion) and
    ``ValueError`` naming the option, the value and what it must be.
    """
    unknown = sorted(k for k in given if k not in declared)
    if unknown:
        allowed = [*known, *declared]
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise TypeError(f"unknown {where} option(s): {', '.join(hints)}; allowed: {', '.join(allowed)} "
                        "(a plugin can add options with nuvom_register_task_options)")
    out: dict[str, Any] = {}
    for key, value in given.items():
        decl = declared[key]
        try:
            out[key] = decl.adapter.validate_python(value)
        except ValidationError as exc:
            expected = getattr(decl.annotation, "__name__", str(decl.annotation))
            problem = "; ".join(e["msg"] for e in exc.errors())
            raise ValueError(f"{where} option {key}={value!r} is invalid: expected {expected} ({problem}); "
                             f"declared by plugin {decl.plugin!r}") from None
    return out
