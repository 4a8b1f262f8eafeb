"""The ``nuvom`` command line.  The app is built in a function from the plugin
manager, so every plugin (this one included) adds its commands through the
``nuvom_register_commands`` hook and a broken plugin never breaks ``--help``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_cli.app import build_app, main

__all__ = ["build_app", "main"]

__getattr__ = lazy_exports(__name__, {"build_app": "app", "main": "app"})
