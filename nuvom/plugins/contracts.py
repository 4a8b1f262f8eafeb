"""Nuvom 0.11's ``nuvom.plugins.contracts``: the ``Plugin`` base class and ``API_VERSION``.

A subclass is a 0.11 protocol plugin: the kernel calls ``start(settings)`` when
a worker (or any app) starts and ``stop()`` when it stops, and refuses an
``api_version`` whose major differs from :data:`API_VERSION`.
"""

from __future__ import annotations

from nuvom_kernel import PLUGIN_API_VERSION as API_VERSION
from nuvom_support.legacy import Plugin

__all__ = ["API_VERSION", "Plugin"]
