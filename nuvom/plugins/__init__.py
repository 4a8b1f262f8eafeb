"""Nuvom 0.11's plugin import paths, kept so 0.11 plugins load unchanged.

``from nuvom.plugins.contracts import Plugin`` (what 0.11's ``nuvom plugin
scaffold`` generated) still works; such a plugin is started and stopped by the
worker through the lifecycle hooks (``nuvom_support.legacy``, the plugin
``nuvom-compat-011``).  New plugins use
hooks instead: see docs/plugins.md.
"""
