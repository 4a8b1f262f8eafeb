"""Nuvom's default backend: queue and results in one SQLite file.

Install it and select it with ``NUVOM_QUEUE_BACKEND=sqlite`` and
``NUVOM_RESULT_BACKEND=sqlite`` (the defaults).  See ``docs/backend-sqlite.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_backend_sqlite.backend import SqliteBackend
    from nuvom_backend_sqlite.database import DatabaseBusyError
    from nuvom_backend_sqlite.netshare import network_share_reason

__all__ = ["SqliteBackend", "DatabaseBusyError", "network_share_reason"]

__getattr__ = lazy_exports(__name__, {"SqliteBackend": "backend", "DatabaseBusyError": "database", "network_share_reason": "netshare"})
