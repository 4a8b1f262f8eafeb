"""The in-process checks of ``nuvom plugin test``: loading, hook names, the 0.11
protocol, registration, commands, lifecycle hooks and serializers.

Each check returns :class:`CheckResult` rows; the contract suites (which need
a pytest process) live in :mod:`nuvom_cli.commands.plugin_contracts`.
"""

from __future__ import annotations

import difflib
import inspect
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from nuvom_kernel import PLUGIN_API_VERSION
from nuvom_kernel.contracts import capabilities_of
from nuvom_kernel.lifecycle import NuvomContext
from nuvom_kernel.manager import NuvomPluginManager, PluginRecord
from nuvom_kernel.models import ErrorInfo, Job, Outcome
from nuvom_kernel.schedules import Schedule
from nuvom_kernel.settings import NuvomSettings
from nuvom_support.backend_base import claim_update, enqueue_update, finish_update
from nuvom_support.legacy import LegacyPluginAdapter


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    #: failing contract tests: [{"test": name, "message": first line}]
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "failures": self.failures}


def default_settings(root: str | Path) -> NuvomSettings:
    """Default settings with ``project_root`` = ``root``; no environment, no files."""
    return NuvomSettings.model_validate({"project_root": str(root)})


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def check_loaded(record: PluginRecord) -> CheckResult:
    version = f" {record.version}" if record.version else ""
    where = f"{record.module or record.distribution or record.name}{version} ({record.origin})"
    if record.loaded and not record.error:
        return CheckResult("load", True, f"imported and registered {where}")
    return CheckResult("load", False, f"{where}: {record.error or 'not loaded'}")


def check_hooks(pm: NuvomPluginManager, record: PluginRecord) -> CheckResult:
    """Every hook implementation matches a spec; no hook-like function is left undecorated."""
    plugin = pm.plugin(record.name)
    known = set(pm.hook_names())
    problems: list[str] = []
    try:
        pm.pm.check_pending()
    except Exception as exc:  # pluggy.PluginValidationError
        problems.append(str(exc))
    if isinstance(plugin, ModuleType):
        for attr, value in sorted(vars(plugin).items()):
            if not attr.startswith("nuvom_") or not callable(value):
                continue
            if getattr(value, "__module__", None) != plugin.__name__:
                continue
            if pm.pm.parse_hookimpl_opts(plugin, attr) is None:
                close = difflib.get_close_matches(attr, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close and close[0] != attr else ""
                problems.append(f"{attr} is named like a hook but is not decorated with @hookimpl, so it never runs{hint}")
    if problems:
        return CheckResult("hooks", False, "; ".join(problems))
    names = ", ".join(h.removeprefix("nuvom_") for h in record.hooks) or "none"
    return CheckResult("hooks", True, f"match the hook specs: {names}")


def check_protocol(plugin: LegacyPluginAdapter) -> list[CheckResult]:
    """A 0.11 plugin: api_version, provides, and start({}) followed by stop()."""
    obj = plugin.obj
    rows = [
        CheckResult("api_version", True, f"{obj.api_version} (this Nuvom speaks plugin API {PLUGIN_API_VERSION})"),
        CheckResult("provides", True, ", ".join(plugin.provides)),
    ]
    step = "start({})"
    try:
        obj.start({})
        step = "stop()"
        obj.stop()
    except Exception as exc:
        rows.append(CheckResult("start/stop", False, f"{step} raised {_error(exc)}"))
    else:
        rows.append(CheckResult("start/stop", True, "start({}) then stop() returned"))
    return rows


def check_registration(pm: NuvomPluginManager, record: PluginRecord) -> tuple[CheckResult, dict[str, list[str]]]:
    try:
        registries = pm.registries
    except Exception as exc:
        return CheckResult("registration", False, _error(exc)), {}
    if record.error:
        return CheckResult("registration", False, record.error), {}
    provides = registries.provided_by(record.name)
    detail = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in provides.items()) or "registers no components"
    return CheckResult("registration", True, detail), provides


def check_settings(pm: NuvomPluginManager, record: PluginRecord) -> CheckResult | None:
    """The plugin's declared settings model builds with its defaults."""
    try:
        declared = [d for d in pm.settings_declarations() if d.plugin == record.name]
    except Exception as exc:
        return CheckResult("settings", False, _error(exc))
    if record.error:
        return CheckResult("settings", False, record.error)
    if not declared:
        return None
    decl = declared[0]
    try:
        decl.model.model_validate({})
    except Exception as exc:
        return CheckResult("settings", False, f"{decl.model.__name__} has no valid defaults: {_error(exc)}")
    names = ", ".join(decl.env_names(k)[0] for k in decl.model.model_fields)
    return CheckResult("settings", True, f"section {decl.section!r}: {names}")


def check_task_options(pm: NuvomPluginManager, record: PluginRecord) -> CheckResult:
    """The task options the plugin declares are valid declarations."""
    try:
        declared = [d for d in pm.task_options().values() if d.plugin == record.name]
    except Exception as exc:
        return CheckResult("task options", False, _error(exc))
    if record.error:
        return CheckResult("task options", False, record.error)
    if not declared:
        return CheckResult("task options", False, "nuvom_register_task_options declared no option")
    names = ", ".join(f"{d.name} ({getattr(d.annotation, '__name__', d.annotation)})" for d in declared)
    return CheckResult("task options", True, f"@task accepts: {names}")


def _impls(pm: NuvomPluginManager, hook: str, name: str) -> list[Callable[..., Any]]:
    """The plugin's own implementations, called directly so that their errors show."""
    return pm.implementations(hook, name)


def _call(function: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Call one implementation with the arguments it takes; run a wrapper around nothing."""
    params = inspect.signature(function).parameters
    value = function(**{k: v for k, v in kwargs.items() if k in params})
    if inspect.isgenerator(value):
        for _ in value:
            pass


def check_commands(pm: NuvomPluginManager, name: str) -> CheckResult:
    """Run the plugin's nuvom_register_commands on a fresh app and build ``--help``."""
    import typer
    from typer.testing import CliRunner

    from nuvom_cli.state import CliState

    app = typer.Typer(name="nuvom", add_completion=False)
    try:
        for function in _impls(pm, "nuvom_register_commands", name):
            _call(function, {"app": app, "cli": CliState(plugins=pm)})
    except Exception as exc:
        return CheckResult("commands", False, f"nuvom_register_commands raised {_error(exc)}")
    names = [c.name or (c.callback.__name__ if c.callback else "?") for c in app.registered_commands]
    names += [g.name or "?" for g in app.registered_groups]
    if not names:
        return CheckResult("commands", False, "nuvom_register_commands added no command to the app")
    result = CliRunner().invoke(app, ["--help"])
    if result.exit_code != 0:
        return CheckResult("commands", False, f"`--help` failed: {result.output.strip() or result.exception}")
    return CheckResult("commands", True, f"adds: {', '.join(sorted(names))}")


_LIFECYCLE_ORDER = (
    "nuvom_configure", "nuvom_startup", "nuvom_job_enqueued", "nuvom_job_started",
    "nuvom_job_retrying", "nuvom_job_finished", "nuvom_job_dead", "nuvom_leases_expired", "nuvom_schedule_fired",
    "nuvom_shutdown",
)


def sample_events(root: Path) -> dict[str, dict[str, Any]]:
    """Arguments for every lifecycle hook, made with the kernel's own state machine."""
    settings = default_settings(root)
    ctx = NuvomContext(settings=settings, role="worker", worker_id="plugin-test-worker")
    job = enqueue_update(Job(task="nuvom_plugin_test.sample", args=[1, 2]))
    claim_update(job, 1, 30.0, "plugin-test-worker")
    record = job.model_copy(deep=True)
    finish_update(record, 1, Outcome(kind="succeeded", result=3))
    error = ErrorInfo(attempt=1, type="builtins.ValueError", message="sample failure", traceback="Traceback ...")
    return {
        "nuvom_configure": {"settings": settings},
        "nuvom_startup": {"ctx": ctx},
        "nuvom_job_enqueued": {"job": job},
        "nuvom_job_started": {"job": job},
        "nuvom_job_retrying": {"job": job, "error": error, "delay": 1.0},
        "nuvom_job_finished": {"job": job, "record": record},
        "nuvom_job_dead": {"job": job, "reason": "sample: attempts exhausted"},
        "nuvom_leases_expired": {"worker_id": "plugin-test-worker", "count": 1},
        "nuvom_schedule_fired": {"schedule": Schedule(id="plugin-test-schedule", task=job.task, kind="interval",
                                                      interval_secs=60.0, next_fire_at=job.created_at),
                                 "jobs": [job], "missed": 1, "coalesced": 0},
        "nuvom_shutdown": {"ctx": ctx},
    }


def check_lifecycle(pm: NuvomPluginManager, record: PluginRecord) -> CheckResult | None:
    """Call each lifecycle hook the plugin implements once, in a worker's order."""
    implemented = [h for h in _LIFECYCLE_ORDER if h in record.hooks]
    if not implemented:
        return None
    with tempfile.TemporaryDirectory(prefix="nuvom-plugin-test-") as tmp:
        events = sample_events(Path(tmp))
        for hook in implemented:
            for function in _impls(pm, hook, record.name):
                try:
                    _call(function, events[hook])
                except Exception as exc:
                    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
                    return CheckResult("lifecycle", False, f"{hook} raised {_error(exc)}\n{''.join(tb[-3:]).rstrip()}")
    called = ", ".join(h.removeprefix("nuvom_") for h in implemented)
    return CheckResult("lifecycle", True, f"called with sample arguments, none raised: {called}")


def check_serializer(pm: NuvomPluginManager, name: str, options: dict[str, Any]) -> CheckResult:
    value = {"n": 1, "list": [1, 2.5, "ü", None, True], "nested": {"k": []}}
    label = f"serializer {name}"
    with tempfile.TemporaryDirectory(prefix="nuvom-plugin-test-") as tmp:
        try:
            serializer = pm.registries["serializers"].get(name).factory(default_settings(tmp), dict(options))
            data = serializer.dumps(value)
            back = serializer.loads(data)
        except Exception as exc:
            return CheckResult(label, False, _error(exc))
    if not isinstance(data, bytes):
        return CheckResult(label, False, f"dumps returned {type(data).__name__}, expected bytes")
    if back != value:
        return CheckResult(label, False, f"round trip changed the value: {back!r}")
    return CheckResult(label, True, "dumps/loads round trip keeps a JSON-like value")


def check_storage_roles(pm: NuvomPluginManager, name: str, options: dict[str, Any]) -> CheckResult | None:
    """A ``nuvom_register_storage`` store provides every role it declares, and
    its factory returns a new object per call (the app owns its stores)."""
    regs = [r for kind in ("queue_backends", "result_backends") if name in pm.registries[kind]
            for r in [pm.registries[kind].get(name)] if r.roles]
    if not regs:
        return None
    registration = regs[0]
    label = f"storage {name}"
    with tempfile.TemporaryDirectory(prefix="nuvom-plugin-test-") as tmp:
        made: list[Any] = []
        try:
            made.append(registration.factory(default_settings(tmp), dict(options)))
            made.append(registration.factory(default_settings(tmp), dict(options)))
            provided = capabilities_of(made[0])
        except Exception as exc:
            return CheckResult(label, False, _error(exc))
        finally:
            for store in {id(m): m for m in made}.values():
                if hasattr(store, "close"):
                    store.close()
    missing = sorted(registration.roles - provided)
    if missing:
        return CheckResult(label, False, f"declares role(s) {', '.join(missing)} but the store does not implement "
                                         f"them (it provides: {', '.join(sorted(provided)) or 'nothing'})")
    roles = ", ".join(sorted(registration.roles))
    if made[0] is made[1]:
        return CheckResult(label, True, f"provides {roles}; note: the factory returned one object twice, so apps "
                                        "share it and its close() must not end another app's use of it")
    return CheckResult(label, True, f"provides every declared role: {roles}")


def run_checks(pm: NuvomPluginManager, record: PluginRecord,
               options: dict[str, Any]) -> tuple[list[CheckResult], dict[str, list[str]]]:
    """Every in-process check for one loaded plugin; stops after a failed load."""
    rows = [check_loaded(record)]
    if not rows[0].ok:
        return rows, {}
    plugin = pm.plugin(record.name)
    rows.append(check_hooks(pm, record))
    if isinstance(plugin, LegacyPluginAdapter):
        rows.extend(check_protocol(plugin))
    registration, provides = check_registration(pm, record)
    rows.append(registration)
    settings_row = check_settings(pm, record) if "nuvom_register_settings" in record.hooks else None
    if settings_row is not None:
        rows.append(settings_row)
    if "nuvom_register_task_options" in record.hooks:
        rows.append(check_task_options(pm, record))
    if "nuvom_register_commands" in record.hooks:
        rows.append(check_commands(pm, record.name))
    if not isinstance(plugin, LegacyPluginAdapter):
        lifecycle = check_lifecycle(pm, record)
        if lifecycle is not None:
            rows.append(lifecycle)
    for name in sorted(set(provides.get("queue_backends", [])) | set(provides.get("result_backends", []))):
        storage_row = check_storage_roles(pm, name, options)
        if storage_row is not None:
            rows.append(storage_row)
    for name in provides.get("serializers", []):
        rows.append(check_serializer(pm, name, options))
    return rows, provides


__all__ = ["CheckResult", "default_settings", "run_checks", "sample_events"]
