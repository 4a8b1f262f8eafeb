"""Nuvom's Redis backend: queue, job store, results and worker registry.

Install ``nuvom[redis]`` and select it with ``NUVOM_QUEUE_BACKEND=redis`` and
``NUVOM_RESULT_BACKEND=redis``; point it at a server with
``NUVOM_REDIS__URL``.  See ``docs/backend-redis.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_backend_redis.backend import RedisBackend
    from nuvom_backend_redis.connection import ConnectionSettings, RedisUnavailableError, redact

__all__ = ["ConnectionSettings", "RedisBackend", "RedisUnavailableError", "redact"]

__getattr__ = lazy_exports(__name__, {"RedisBackend": "backend", "ConnectionSettings": "connection", "RedisUnavailableError": "connection", "redact": "connection"})
