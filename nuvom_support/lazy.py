"""Cheap package imports for plugins.

Loading a plugin imports its package (for the entry point ``pkg.plugin``), and
every command, even ``nuvom --help``, loads every installed plugin.  A package
whose ``__init__`` imported its implementation would make each command pay
for every backend's client library.  :func:`lazy_exports` gives a package the
same public names, imported from their modules on first use (PEP 562)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps each public name
    to the submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute
        return value

    return __getattr__
