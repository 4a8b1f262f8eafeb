"""Nuvom on PostgreSQL: queue, job store, results and worker registry for many hosts.

Select it with ``NUVOM_QUEUE_BACKEND=postgres`` and ``NUVOM_RESULT_BACKEND=postgres``
and point it at a database with ``NUVOM_POSTGRES__URL``.  See ``docs/backend-postgres.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_backend_postgres.backend import PostgresBackend, in_transaction

__all__ = ["PostgresBackend", "in_transaction"]

__getattr__ = lazy_exports(__name__, {"PostgresBackend": "backend", "in_transaction": "backend"})
