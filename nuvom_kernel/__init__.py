"""The Nuvom microkernel: hook specifications, plugin manager, registries,
settings, models, the task decorator and the worker loop.  It imports no
plugin; every backend, executor and command is a plugin."""

from __future__ import annotations

from nuvom_kernel.hookspecs import hookimpl, hookspec

__version__ = "1.0.0"
#: Major version of the plugin API; plugins declaring another major are refused.
PLUGIN_API_VERSION = "1.0"

__all__ = ["__version__", "PLUGIN_API_VERSION", "hookimpl", "hookspec"]
