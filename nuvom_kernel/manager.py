"""The plugin manager: entry points, ``.nuvom_plugins.toml``, allow/block lists
and load errors.  Its typed hook calls are :class:`~nuvom_kernel.plugin_calls.KernelHooks`,
what the registration hooks register :class:`~nuvom_kernel.registry.Registrations`.

Loading never raises for one bad plugin (unless ``NUVOM_STRICT_PLUGINS=1``): the
failure is recorded with the plugin's name, distribution and error and shown by
``nuvom plugin status``; everything else keeps working.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Collection
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from nuvom_kernel import hookspecs
from nuvom_kernel.errors import PluginError
from nuvom_kernel.hookcalls import guarded_plugin
from nuvom_kernel.plugin_calls import KernelHooks
from nuvom_kernel.plugin_settings import SettingsDeclaration
from nuvom_kernel.plugin_sources import (
    PLUGINS_FILE,
    PluginRecord,
    PluginsFile,
    _env_list,
    _norm,
    _why_disabled,
)
from nuvom_kernel.registry import Registrations, Registries
from nuvom_kernel.task_options import TaskOptionDeclaration

log = logging.getLogger("nuvom.plugins")
ENTRY_POINT_GROUP = "nuvom"
_TRUE = {"1", "true", "yes", "on"}


class NuvomPluginManager(KernelHooks, Registrations):
    """Builds and owns the pluggy manager and the component registries.

    Core code calls the typed methods below (``startup``, ``job_started`` ...),
    never ``pm.hook`` directly; they call every hook through ``pm.hook``.
    pluggy sees each plugin through a :class:`~nuvom_kernel.hookcalls.GuardedPlugin`
    so that one plugin's failure is isolated (see :mod:`nuvom_kernel.hookcalls`);
    :meth:`plugin` returns the plugin object itself.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else Path.cwd()
        self.environ = dict(os.environ if environ is None else environ)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        #: installed entry points not loaded on purpose: name -> why (``plugin status`` lists them)
        self.disabled: dict[str, str] = {}
        self.plugin_options: dict[str, dict[str, Any]] = {}
        self._registries: Registries | None = None
        #: while ``load`` runs: loaded objects without hook implementations, adapted
        #: (``nuvom_adapt_plugin``) once every plugin, so every adapter, is loaded
        self._unadapted: list[tuple[Any, PluginRecord]] | None = None
        self._originals: dict[str, Any] = {}
        self._implemented: dict[str, bool] = {}
        self._call_errors: list[tuple[str, BaseException]] | None = None
        self._settings_declarations: list[SettingsDeclaration] | None = None
        self._task_options: dict[str, TaskOptionDeclaration] | None = None
        self.loaded = False
        self.strict = self.environ.get("NUVOM_STRICT_PLUGINS", "").lower() in _TRUE
        self.tracing = self.environ.get("NUVOM_TRACE_PLUGINS", "").lower() in _TRUE
        if self.tracing:
            self.pm.add_hookcall_monitoring(_trace_before, _trace_after)

    # -- loading -------------------------------------------------------------

    def load(self, *, entry_points: bool = True, plugins_file: bool = True,
             only: Collection[str] | None = None) -> NuvomPluginManager:
        """Load every enabled plugin once; safe to call again.

        ``only``: load just the plugins with these names (entry-point names or
        ``.nuvom_plugins.toml`` specs), e.g. in a process executor's child.
        """
        if self.loaded:
            return self
        self.loaded = True
        from nuvom_kernel import builtin_serializers
        from nuvom_kernel.execution import KernelExecution

        self.pm.register(KernelExecution(), name="nuvom-kernel-execution")  # the innermost task call

        self._register(builtin_serializers, PluginRecord(
            name="nuvom-kernel", origin="kernel", distribution="nuvom-kernel", version=_kernel_version(),
            module="nuvom_kernel.builtin_serializers",
        ))
        config = PluginsFile()
        if plugins_file:
            try:
                config = PluginsFile.read(self.root)
            except PluginError as exc:
                self._fail(PluginRecord(name=PLUGINS_FILE, origin=PLUGINS_FILE), exc)
        self.plugin_options = config.settings
        disabled = {_norm(n) for n in config.disabled}
        disabled |= {_norm(n) for n in (_env_list("NUVOM_DISABLE_PLUGINS", self.environ) or [])}
        allow = _env_list("NUVOM_LOAD_PLUGINS", self.environ)
        allowed = None if allow is None else {_norm(n) for n in allow}
        if only is not None:
            wanted = {_norm(n) for n in only}
            allowed = wanted if allowed is None else allowed & wanted
        self._unadapted = []
        try:
            if entry_points:
                for ep in self._entry_points():
                    if _norm(ep.name) in disabled or (allowed is not None and _norm(ep.name) not in allowed):
                        self.disabled[ep.name] = _why_disabled(ep.name, config.disabled, allowed)
                        continue
                    self._load_entry_point(ep)
            for spec in config.modules:
                if _norm(spec) in disabled or (only is not None and _norm(spec) not in wanted):
                    continue
                self.load_spec(spec, origin=PLUGINS_FILE)
        finally:  # a strict-mode failure must not leave later load_spec calls deferred
            unadapted, self._unadapted = self._unadapted, None
        for obj, record in unadapted:
            self._register(obj, record)
        self._validate_all()
        return self

    def _entry_points(self) -> list[metadata.EntryPoint]:
        unique: dict[str, metadata.EntryPoint] = {}
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            unique.setdefault(ep.name, ep)  # the same distribution may be found twice on sys.path
        return list(unique.values())

    def _load_entry_point(self, ep: metadata.EntryPoint) -> None:
        dist = getattr(ep, "dist", None)
        self._load(ep.load, PluginRecord(name=ep.name, origin="entry point", module=ep.value,
                                         distribution=getattr(dist, "name", None) or ep.name,
                                         version=getattr(dist, "version", None)))

    def load_spec(self, spec: str, origin: str = "explicit", name: str | None = None) -> PluginRecord:
        """Load one plugin from a dotted module, ``module:attr`` or a ``.py`` path."""
        return self._load(lambda: self._import_spec(spec), PluginRecord(name=name or spec, origin=origin, module=spec))

    def _load(self, load: Callable[[], Any], record: PluginRecord) -> PluginRecord:
        try:
            obj = load()
        except BaseException as exc:  # a plugin may raise anything on import, even SystemExit
            self._fail(record, exc)
        else:
            self._register(obj, record)
        return record

    def _import_spec(self, spec: str) -> Any:
        modname, _, attr = spec.partition(":")
        if modname.endswith(".py") or "/" in modname or "\\" in modname:
            module = _import_file(self.root / modname if not os.path.isabs(modname) else Path(modname))
        else:
            added = str(self.root) not in sys.path
            if added:  # listed explicitly, so the project root may be searched
                sys.path.insert(0, str(self.root))
            try:
                module = importlib.import_module(modname)
            finally:
                if added and str(self.root) in sys.path:
                    sys.path.remove(str(self.root))
        obj: Any = module
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj

    def _register(self, obj: Any, record: PluginRecord) -> None:
        if record.name in self.records and self.records[record.name].loaded:
            return
        if self._unadapted is not None and not _has_hookimpls(obj):
            self._unadapted.append((obj, record))
            return
        try:
            plugin = obj if _has_hookimpls(obj) else self._adapt(obj, record)
            if record.name in self.records and self.records[record.name].loaded:
                return
            proxy = guarded_plugin(plugin, record.name, self._hookimpls(plugin, record), self._hook_failed,
                                   unguarded=_UNGUARDED)
            self.pm.register(proxy, name=record.name)
            self._implemented.clear()
        except BaseException as exc:
            self._fail(record, exc)
            return
        self._originals[record.name] = plugin
        record.loaded = True
        record.hooks = sorted(
            hc.name for hc in self.pm.get_hookcallers(proxy) or [] if hc.name.startswith("nuvom_")
        )
        self.records[record.name] = record

    def plugin(self, name: str) -> Any:
        """The loaded plugin object (module, object, or what adapted it) named ``name``, or None."""
        return self._originals.get(name)

    def implementations(self, hook_name: str, name: str) -> list[Any]:
        """The plugin's own (unguarded) implementation functions of ``hook_name``."""
        caller = getattr(self.pm.hook, hook_name)
        plugin = self.pm.get_plugin(name)
        return [getattr(impl.function, "__wrapped__", impl.function)
                for impl in caller.get_hookimpls() if impl.plugin is plugin]

    def _hook_failed(self, plugin: str, hook_name: str, exc: BaseException) -> None:
        """One implementation raised: isolate it (log, record) or re-raise, per hook."""
        if hook_name in hookspecs.REGISTRATION_HOOKS or hook_name in (
                hookspecs.STORAGE_HOOK, "nuvom_register_commands", "nuvom_register_settings", "nuvom_register_task_options"):
            record = self.records.get(plugin) or PluginRecord(name=plugin, origin="?")
            self._record_error(record, exc)
            if hook_name == "nuvom_register_commands":
                log.error("plugin %s failed to add its commands: %s", plugin, exc)
                if self._call_errors is not None:
                    self._call_errors.append((plugin, exc))
                return
            log.error("plugin %s failed in %s: %s", plugin, hook_name, record.error)
            if self.strict or isinstance(exc, PluginError):
                raise exc
            return
        log.error("plugin %s raised in %s (ignored)", plugin, hook_name,
                  exc_info=(type(exc), exc, exc.__traceback__))

    def _adapt(self, obj: Any, record: PluginRecord) -> Any:
        """The plugin some ``nuvom_adapt_plugin`` makes of ``obj``, which has no hook implementations.
        Outside entry points, a ``name`` attribute (of the adapted object, else of ``obj``) names the plugin."""
        if record.origin != "entry point" and isinstance(getattr(obj, "name", None), str) and obj.name:
            record.name = obj.name  # so a refusal is recorded under the plugin's own name
        adapted = self.pm.hook.nuvom_adapt_plugin(obj=obj)
        if adapted is None or not _has_hookimpls(adapted):
            what = f"module {obj.__name__}" if isinstance(obj, ModuleType) else repr(obj)
            raise PluginError(
                f"plugin {record.name!r}: {what} defines no Nuvom hook implementations (functions decorated "
                "with @nuvom.hookimpl), and no loaded plugin adapts it (a Nuvom 0.11 plugin, with name, "
                "api_version, start and stop, needs the nuvom-compat-011 plugin of nuvom-kernel: is it disabled?)"
            )
        if record.origin != "entry point" and getattr(adapted, "name", None):
            record.name = str(adapted.name)
        return adapted

    def _hookimpls(self, plugin: Any, record: PluginRecord) -> dict[str, tuple[str, dict[str, Any]]]:
        """``{attribute: (hook name, pluggy options)}`` of ``plugin``; a misspelled hook
        name or a wrapper-only hook implemented without ``wrapper=True`` is refused."""
        known = self.hook_names()
        impls = {}
        for attr in dir(plugin):
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            if attr.startswith("nuvom_") and attr not in known:
                close = difflib.get_close_matches(attr, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise PluginError(
                    f"plugin {record.name!r} implements unknown hook {attr!r}{hint} "
                    "(see docs/hooks.md for the hook names)"
                )
            hook_name = opts.get("specname") or attr
            if hook_name in hookspecs.WRAPPER_ONLY_HOOKS and not (opts.get("wrapper") or opts.get("hookwrapper")):
                raise PluginError(
                    f"plugin {record.name!r} implements {hook_name} without wrapper=True: the kernel calls "
                    f"the task itself; declare it as @hookimpl(wrapper=True) and `yield` (see docs/hooks.md)"
                )
            impls[attr] = (hook_name, dict(opts))
        return impls

    def _validate_all(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:  # pragma: no cover - caught per plugin above
            raise PluginError(str(exc)) from exc

    def _record_error(self, record: PluginRecord, exc: BaseException) -> None:
        record.error = f"{type(exc).__name__}: {exc}"
        record.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.records[record.name] = record

    def _fail(self, record: PluginRecord, exc: BaseException) -> None:
        """``record``'s plugin failed to load (``KeyboardInterrupt`` is re-raised, not recorded)."""
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        record.loaded = False
        self._record_error(record, exc)
        log.warning("plugin %s (%s) failed to load: %s", record.name, record.origin, record.error,
                    extra={"event": "plugin.load_error", "plugin": record.name, "error_type": type(exc).__name__,
                           "error_message": str(exc), "traceback": record.traceback})
        if self.strict:
            raise PluginError(
                f"plugin {record.name!r} ({record.origin}) failed to load: {record.error} "
                "(NUVOM_STRICT_PLUGINS is set)"
            ) from exc

    def plugin_status(self) -> list[PluginRecord]:
        try:
            self.registries  # noqa: B018 - fills ``provides``
        except PluginError as exc:
            log.error("%s", exc)
        return sorted(self.records.values(), key=lambda r: (r.origin != "entry point", r.name))


#: hooks whose implementations are not guarded: a failing historic nuvom_configure
#: fails loading the plugin, as it did before hooks went through pm.hook; so does an
#: adapter's PluginError (nuvom_adapt_plugin) for the object it refuses
_UNGUARDED = frozenset({"nuvom_configure", "nuvom_schedule_next_fire", "nuvom_schedule_task", "nuvom_adapt_plugin"})


def _trace_before(hook_name: str, hook_impls: Any, kwargs: Any) -> None:
    names = ", ".join(impl.plugin_name for impl in reversed(hook_impls)) or "(no implementation)"
    sys.stderr.write(f"[nuvom trace] {hook_name} -> {names}\n")


def _trace_after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: Any) -> None:
    if outcome.exception is not None:
        exc = outcome.exception
        sys.stderr.write(f"[nuvom trace] {hook_name} raised {type(exc).__name__}: {exc}\n")


def _kernel_version() -> str:
    from nuvom_kernel import __version__

    return __version__


def _has_hookimpls(obj: Any) -> bool:
    return any(
        callable(getattr(obj, a, None)) and hasattr(getattr(obj, a), f"{hookspecs.PROJECT_NAME}_impl")
        for a in dir(obj) if a.startswith("nuvom_")
    )


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist")
    from nuvom_kernel.modules import exec_file_module

    return exec_file_module(f"nuvom_local_plugin_{path.stem}_{abs(hash(str(path))) % 10**8}", path)
