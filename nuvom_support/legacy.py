"""Nuvom 0.11 compatibility: its package exports ``get_settings`` and
``get_logger`` (re-exported by ``nuvom``), and its plugin protocol, adapted
onto the lifecycle hooks by the plugin ``nuvom-compat-011``, an entry point
of the ``nuvom-kernel`` distribution (the kernel itself knows nothing of 0.11
plugins; it asks ``nuvom_adapt_plugin`` about any loaded object that has no
hook implementations).

A 0.11 plugin is an object (or class) with ``name``, ``api_version``,
``provides``, optional ``requires``, ``start(settings)`` and ``stop()``.  The
adapter calls ``start`` at :func:`nuvom_startup` with the plugin's settings
table (merged over the effective settings) and ``stop`` at
:func:`nuvom_shutdown`.  An ``api_version`` whose major differs from the
kernel's is refused.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any

from nuvom_kernel import PLUGIN_API_VERSION
from nuvom_kernel.app import get_app
from nuvom_kernel.errors import PluginError
from nuvom_kernel.hookspecs import hookimpl
from nuvom_kernel.settings import NuvomSettings

#: The entry point (in group ``nuvom``) that loads this module as a plugin.
PLUGIN_NAME = "nuvom-compat-011"
_REQUIRED = ("name", "api_version", "start", "stop")



def get_settings() -> NuvomSettings:
    """The effective settings of the current app (``use_app``, else the default one)."""
    return get_app().settings


def get_logger(name: str = "nuvom") -> logging.Logger:
    """A logger under ``nuvom`` (its level follows ``NUVOM_LOG_LEVEL`` when the ``nuvom`` command runs)."""
    return logging.getLogger(name if name == "nuvom" or name.startswith("nuvom.") else f"nuvom.{name}")


class Plugin(ABC):
    """0.11's plugin contract: set ``api_version``, ``name`` and ``provides``;
    implement ``start`` and ``stop``."""

    api_version: str
    name: str
    provides: list[str]
    requires: list[str]

    @abstractmethod
    def start(self, settings: dict[str, Any], extras: dict[str, Any] | None = None) -> None:
        """Called with the effective settings (and this plugin's options) when the app starts."""

    @abstractmethod
    def stop(self) -> None:
        """Called when the app stops."""

    def update_runtime(self, extras: dict[str, Any]) -> None:  # noqa: B027 - optional, as in 0.11
        """Optional in 0.11; the kernel does not call it."""


def is_protocol_plugin(obj: Any) -> bool:
    return all(hasattr(obj, attr) for attr in _REQUIRED) and callable(getattr(obj, "start", None))


def check_api_version(api_version: Any, plugin_name: str) -> None:
    if not isinstance(api_version, str) or not api_version.split(".")[0].isdigit():
        raise PluginError(f"plugin {plugin_name!r}: api_version must be a string like '1.0', got {api_version!r}")
    want = PLUGIN_API_VERSION.split(".")[0]
    if api_version.split(".")[0] != want:
        raise PluginError(
            f"plugin {plugin_name!r} targets plugin API {api_version}, but this Nuvom speaks {PLUGIN_API_VERSION}: "
            f"upgrade the plugin to an API {want}.x release, or install a Nuvom version that supports API {api_version}"
        )


class LegacyPluginAdapter:
    """Wraps a 0.11 protocol plugin so pluggy sees ordinary hook implementations."""

    def __init__(self, obj: Any) -> None:
        if inspect.isclass(obj):
            obj = obj()
        self.obj = obj
        self.name = str(getattr(obj, "name", "") or type(obj).__name__)
        check_api_version(getattr(obj, "api_version", None), self.name)
        provides = getattr(obj, "provides", [])
        if isinstance(provides, str):
            provides = [provides]
        if not isinstance(provides, (list, tuple)) or not provides:
            raise PluginError(f"plugin {self.name!r}: provides must be a non-empty list of capabilities, got {provides!r}")
        self.provides = [str(p) for p in provides]
        self.requires = [str(r) for r in getattr(obj, "requires", []) or []]
        self.started = False

    def __repr__(self) -> str:
        return f"<0.11 plugin {self.name}>"

    @hookimpl
    def nuvom_startup(self, ctx: Any) -> None:
        settings = ctx.settings.model_dump() if hasattr(ctx.settings, "model_dump") else dict(ctx.settings)
        settings.update(ctx.options.get(self.name, {}))
        self.obj.start(settings)
        self.started = True

    @hookimpl
    def nuvom_shutdown(self, ctx: Any) -> None:
        if self.started:
            self.started = False
            self.obj.stop()


@hookimpl
def nuvom_adapt_plugin(obj: Any) -> LegacyPluginAdapter | None:
    """A 0.11 protocol plugin (a class, an instance, or a module defining one
    as its first such public attribute) wrapped in its adapter; ``None`` for
    anything else.  A bad ``api_version`` or ``provides`` raises ``PluginError``."""
    if isinstance(obj, ModuleType):
        found = [v for k, v in vars(obj).items() if not k.startswith("_") and is_protocol_plugin(v)
                 and getattr(v, "__module__", obj.__name__) == obj.__name__]
        if not found:
            return None
        obj = found[0]
    return LegacyPluginAdapter(obj) if is_protocol_plugin(obj) else None
