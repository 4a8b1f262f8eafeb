"""The session servers every test directory shares (registered by the root
``conftest.py``): one ``redis-server`` and one PostgreSQL per test session,
started on first use, so a run that never asks for them starts neither.

The server modules (and redis-py / psycopg) are imported inside the
fixtures: a checkout without the networked plugins still collects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from netservers import unavailable


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ``RedisServer`` this session started, or one naming ``NUVOM_TEST_REDIS_URL``."""
    try:
        import redis

        from netservers.redis_server import RedisServer, start_server
    except ImportError as exc:
        unavailable("Redis", f"{exc} (pip install -e plugins/nuvom-backend-redis)")
        return
    external = os.environ.get("NUVOM_TEST_REDIS_URL")
    if external:
        client = redis.Redis.from_url(external)
        try:
            client.ping()
        except redis.RedisError as exc:
            unavailable("Redis", f"NUVOM_TEST_REDIS_URL does not answer: {type(exc).__name__}")
        finally:
            client.close()
        yield RedisServer(url=external)
        return
    server = start_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """The ``PgServer`` this session started (``None`` with ``NUVOM_TEST_POSTGRES_URL``)."""
    if os.environ.get("NUVOM_TEST_POSTGRES_URL"):
        yield None
        return
    try:
        from netservers.pg_server import PgServer, ServerUnavailable
    except ImportError as exc:
        unavailable("PostgreSQL", f"{exc} (pip install -e plugins/nuvom-backend-postgres)")
        return
    try:
        server = PgServer()
        server.start()
    except ServerUnavailable as exc:
        unavailable("PostgreSQL", str(exc))
        return
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def pg_url(pg_server: Any) -> str:
    """The URL of the session's PostgreSQL server."""
    return pg_server.url if pg_server is not None else os.environ["NUVOM_TEST_POSTGRES_URL"]
