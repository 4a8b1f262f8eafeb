"""Nuvom 0.11's ``nuvom.plugins.contracts``: the ``Plugin`` base class and ``API_VERSION``.

A subclass is a 0.11 protocol plugin: the kernel calls ``start(settings)`` when
a worker (or any app) starts and ``stop()`` when it stops, and refuses an
``api_version`` whose major differs from :data:`API_VERSION`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from nuvom_kernel import PLUGIN_API_VERSION

#: The plugin API this kernel speaks (0.11's constant; same value as ``nuvom.PLUGIN_API_VERSION``).
API_VERSION = PLUGIN_API_VERSION


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


__all__ = ["API_VERSION", "Plugin"]
