"""Nuvom's default backend: queue and results in one SQLite file.

Install it and select it with ``NUVOM_QUEUE_BACKEND=sqlite`` and
``NUVOM_RESULT_BACKEND=sqlite`` (the defaults).  See ``docs/backend-sqlite.md``.
"""

from __future__ import annotations

from nuvom_backend_sqlite.backend import SqliteBackend
from nuvom_backend_sqlite.database import DatabaseBusyError
from nuvom_backend_sqlite.netshare import network_share_reason

__all__ = ["SqliteBackend", "DatabaseBusyError", "network_share_reason"]
