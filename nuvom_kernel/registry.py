"""Named component registries, filled by the registration hooks."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from nuvom_kernel import hookspecs
from nuvom_kernel.contracts import ComponentFactory
from nuvom_kernel.errors import ComponentNotFoundError, DuplicateComponentError, PluginError
from nuvom_kernel.hookcalls import current_plugin
from nuvom_kernel.plugin_settings import SettingsDeclaration, declaration
from nuvom_kernel.task_options import TaskOptionDeclaration, task_option

#: Kinds of component, as named in ``plugin status`` (``provides``).
KINDS = ("queue_backends", "result_backends", "executors", "discoverers", "serializers")

#: Which distribution provides a well-known component, for "not installed" errors.
KNOWN_PROVIDERS: dict[tuple[str, str], str] = {
    **{(kind, name): f"nuvom-backend-{name}"  # each backend plugin serves both roles
       for kind in ("queue_backends", "result_backends") for name in ("memory", "sqlite", "file", "postgres", "redis")},
    ("executors", "thread"): "nuvom-executor-thread",
    ("executors", "process"): "nuvom-executor-process",
    ("discoverers", "ast"): "nuvom-discovery-ast",
    ("serializers", "msgpack"): "nuvom-serializer-msgpack",
}

#: Distributions that `pip install nuvom` does not include: their extra of ``nuvom``.
OPTIONAL_PROVIDERS = {"nuvom-executor-process": "process", "nuvom-backend-postgres": "postgres",
                      "nuvom-backend-redis": "redis"}

#: Well-known names no published distribution provides yet (so no install advice).
PLANNED: dict[tuple[str, str], str] = {}

_SETTING_FOR_KIND = {
    "queue_backends": "NUVOM_QUEUE_BACKEND",
    "result_backends": "NUVOM_RESULT_BACKEND",
    "executors": "NUVOM_EXECUTOR",
    "serializers": "NUVOM_SERIALIZATION_BACKEND",
    "discoverers": "the discoverer name",
}


def describe_source(kind: str, source: str | None) -> str:
    """Where the chosen name came from, for "can't be found" errors
    (``source`` as in ``nuvom config``'s Source column)."""
    setting = _SETTING_FOR_KIND[kind]
    if kind == "discoverers" or source is None:
        return f"selected by {setting}"
    if source == "default":
        return f"the default; set {setting} to choose another"
    if source in ("environment", ".env"):
        return f"{setting} in the environment" if source == "environment" else f"{setting} in .env"
    if source.startswith("pyproject.toml"):
        return f"{setting.removeprefix('NUVOM_').lower()} in {source}"
    if source == "command line":
        return "given as an option or argument"
    return f"given as {source}"


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    factory: ComponentFactory
    description: str | None
    plugin: str
    #: the roles a ``nuvom_register_storage`` registration serves (empty for
    #: the older per-kind hooks)
    roles: frozenset[str] = frozenset()


class ComponentRegistry:
    """One kind of component (e.g. queue backends): name -> registration."""

    def __init__(self, kind: str, disabled: dict[str, str] | None = None) -> None:
        self.kind = kind
        #: installed plugins not loaded on purpose: name -> why
        self.disabled = disabled if disabled is not None else {}
        self._entries: dict[str, Registration] = {}

    def register(self, name: str, factory: ComponentFactory, description: str | None = None, *, plugin: str,
                 roles: frozenset[str] = frozenset()) -> None:
        if not isinstance(name, str) or not name.strip():
            raise DuplicateComponentError(f"plugin {plugin!r} registered a {self.kind[:-1]} with an empty name")
        key = name.strip().lower()
        if not callable(factory):
            raise TypeError(f"plugin {plugin!r} registered {self.kind[:-1]} {key!r} with a factory that is not callable")
        existing = self._entries.get(key)
        if existing is not None:
            raise DuplicateComponentError(
                f"{self.kind[:-1].replace('_', ' ')} {key!r} is registered by two plugins: "
                f"{existing.plugin!r} and {plugin!r}; uninstall or disable one of them "
                "(NUVOM_DISABLE_PLUGINS or `disabled` in .nuvom_plugins.toml)"
            )
        self._entries[key] = Registration(self.kind, key, factory, description, plugin, roles)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[Registration]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def get(self, name: str, source: str | None = None) -> Registration:
        """The registration of ``name``; ``source`` (where the name was set,
        e.g. ``"default"`` or ``"environment"``) makes the error say so."""
        key = (name or "").strip().lower()
        try:
            return self._entries[key]
        except KeyError:
            pass
        what = self.kind[:-1].replace("_", " ")
        installed = ", ".join(self.names()) or "none"
        hint = ""
        provider = KNOWN_PROVIDERS.get((self.kind, key))
        if provider and provider in self.disabled:
            hint = f"; its plugin {provider} is installed but {self.disabled[provider]}"
        elif provider:
            extra = OPTIONAL_PROVIDERS.get(provider)
            hint = f"; it is provided by {provider}: pip install {provider}"
            hint += f' (or pip install "nuvom[{extra}]")' if extra else " (pip install nuvom includes it)"
        elif (self.kind, key) in PLANNED:
            hint = f"; {PLANNED[(self.kind, key)]} is planned but not published yet, so choose an installed one"
        else:
            close = difflib.get_close_matches(key, self.names(), n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?"
        question = "" if provider and provider in self.disabled else " is the plugin not installed?"
        raise ComponentNotFoundError(
            f"{what} {key!r} ({describe_source(self.kind, source)}) can't be found:{question} "
            f"Installed: {installed}{hint}"
        )

    def create(self, name: str, settings: Any, options_by_plugin: dict[str, Any],
               source: str | None = None) -> Any:
        """Build the component; ``options_by_plugin[plugin]`` is the plugin's validated
        settings model, or its ``.nuvom_plugins.toml`` table (a dict, copied)."""
        reg = self.get(name, source)
        options = options_by_plugin.get(reg.plugin, {})
        return reg.factory(settings, dict(options) if isinstance(options, dict) else options)


class Registries:
    """All component registries of one plugin manager."""

    def __init__(self, disabled: dict[str, str] | None = None) -> None:
        self.by_kind = {kind: ComponentRegistry(kind, disabled) for kind in KINDS}

    def __getitem__(self, kind: str) -> ComponentRegistry:
        return self.by_kind[kind]

    def register_storage(self, name: str, factory: ComponentFactory, roles: Any,
                         description: str | None = None, *, plugin: str) -> None:
        """One store serving ``roles``: a queue backend with ``"queue"``, a
        result backend with ``"results"`` (``nuvom_register_storage``)."""
        from nuvom_kernel.contracts import CAPABILITIES

        if isinstance(roles, str) or not hasattr(roles, "__iter__"):
            raise PluginError(
                f"plugin {plugin!r} registered storage {name!r} with roles={roles!r}; pass a list of "
                f"role names, e.g. roles=(\"queue\", \"results\") (known: {', '.join(CAPABILITIES)})")
        wanted = frozenset(str(r) for r in roles)
        unknown = sorted(wanted - set(CAPABILITIES))
        if unknown:
            raise PluginError(
                f"plugin {plugin!r} registered storage {name!r} with unknown role(s) {', '.join(unknown)}; "
                f"known roles: {', '.join(CAPABILITIES)}")
        if not wanted & {"queue", "results"}:
            raise PluginError(
                f"plugin {plugin!r} registered storage {name!r} with roles {', '.join(sorted(wanted)) or 'none'}; "
                "a store is selected as a queue or result backend, so its roles must include \"queue\" or \"results\"")
        if "queue" in wanted:
            self.by_kind["queue_backends"].register(name, factory, description, plugin=plugin, roles=wanted)
        if "results" in wanted:
            self.by_kind["result_backends"].register(name, factory, description, plugin=plugin, roles=wanted)

    def provided_by(self, plugin: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for kind, reg in self.by_kind.items():
            names = [r.name for r in reg.items() if r.plugin == plugin]
            if names:
                out[kind] = names
        return out


class Registrations:
    """The registration hooks' results, collected once (mixed into
    :class:`~nuvom_kernel.manager.NuvomPluginManager`): component registries,
    plugin settings models and plugin task options.  ``register`` may be
    called only while its hook runs; it records which plugin registered."""

    # set by NuvomPluginManager.__init__
    pm: pluggy.PluginManager
    records: dict[str, Any]
    disabled: dict[str, str]
    _registries: Registries | None
    _settings_declarations: list[SettingsDeclaration] | None
    _task_options: dict[str, TaskOptionDeclaration] | None

    if TYPE_CHECKING:
        def load(self) -> Any: ...

    @property
    def registries(self) -> Registries:
        if self._registries is None:
            self.load()
            registries = Registries(disabled=self.disabled)
            for hook_name, kind in hookspecs.REGISTRATION_HOOKS.items():

                def register(name: str, factory: Any, description: str | None = None,
                             _kind: str = kind, _hook: str = hook_name) -> None:
                    registries[_kind].register(name, factory, description, plugin=_registering(name, _hook))

                getattr(self.pm.hook, hook_name)(register=register)

            def register_storage(name: str, factory: Any, *, roles: Any,
                                 description: str | None = None) -> None:
                registries.register_storage(name, factory, roles, description,
                                            plugin=_registering(name, hookspecs.STORAGE_HOOK))

            getattr(self.pm.hook, hookspecs.STORAGE_HOOK)(register=register_storage)
            for name, record in self.records.items():
                record.provides = registries.provided_by(name)
            self._registries = registries
        return self._registries

    def settings_declarations(self) -> list[SettingsDeclaration]:
        """Every plugin's declared options (``nuvom_register_settings``), collected once."""
        if self._settings_declarations is None:
            self.load()
            found: list[SettingsDeclaration] = []

            def register(section: str, model: Any, *, env: Any = None) -> None:
                plugin = _registering(section, "nuvom_register_settings")
                decl = declaration(section, model, plugin, env)
                for other in found:
                    if other.section == decl.section or other.plugin == decl.plugin:
                        raise PluginError(
                            f"settings {decl.section!r} of plugin {plugin!r}: plugin {other.plugin!r} already "
                            f"registered settings {other.section!r}; each plugin registers one model under "
                            "its own name")
                found.append(decl)

            self.pm.hook.nuvom_register_settings(register=register)
            self._settings_declarations = found
        return self._settings_declarations

    def task_options(self) -> dict[str, TaskOptionDeclaration]:
        """Task options plugins declared (``nuvom_register_task_options``), collected once."""
        if self._task_options is None:
            self.load()
            found: dict[str, TaskOptionDeclaration] = {}

            def register(name: str, annotation: Any = Any, *, description: str | None = None) -> None:
                plugin = _registering(name, "nuvom_register_task_options")
                decl = task_option(name, annotation, plugin, description)
                if decl.name in found:
                    raise PluginError(f"task option {decl.name!r} is declared by two plugins: "
                                      f"{found[decl.name].plugin!r} and {plugin!r}; uninstall or disable one")
                found[decl.name] = decl

            self.pm.hook.nuvom_register_task_options(register=register)
            self._task_options = found
        return self._task_options


def _registering(name: str, hook: str) -> str:
    """The plugin whose ``hook`` implementation is calling ``register(name, ...)``;
    a ``register`` kept and called after its hook returned is refused."""
    plugin = current_plugin.get()
    if plugin is None:
        raise PluginError(f"register({name!r}) was called outside of {hook}: call it only while the hook runs")
    return plugin
