"""Nuvom's ``ast`` task discoverer: finds ``@task`` functions by reading the
source, never importing it, plus the ``nuvom discover tasks`` and
``nuvom list tasks`` commands."""

from __future__ import annotations

from nuvom_discovery_ast.discoverer import AstDiscoverer

__all__ = ["AstDiscoverer"]
