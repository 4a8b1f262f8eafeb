"""Nuvom's ``ast`` task discoverer: finds ``@task`` functions by reading the
source, never importing it, plus the ``nuvom discover tasks`` and
``nuvom list tasks`` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_discovery_ast.discoverer import AstDiscoverer

__all__ = ["AstDiscoverer"]

__getattr__ = lazy_exports(__name__, {"AstDiscoverer": "discoverer"})
