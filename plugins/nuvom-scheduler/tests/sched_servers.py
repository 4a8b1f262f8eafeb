"""Real Redis and PostgreSQL servers for the scheduler's multi-process tests.

The repository's shared test servers start them (no second copy of that
code): ``tests/netservers/redis_server.py`` (``start_server``,
``NUVOM_TEST_REDIS_URL``) and ``tests/netservers/pg_server.py``
(``PgServer``, ``NUVOM_TEST_POSTGRES_URL``).  Without a server the test is
skipped with the reason, or fails under ``NUVOM_CI=1``, as those plugins'
tests do.  Each run gets its own Redis namespace / PostgreSQL schema, and
:meth:`Servers.settings` returns the ``NUVOM_*`` variables that select it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NETSERVERS = Path(__file__).resolve().parents[3] / "tests" / "netservers"


def _unavailable(reason: str) -> None:
    if os.environ.get("NUVOM_CI") == "1":
        pytest.fail(f"NUVOM_CI=1 and no server: {reason}")
    pytest.skip(reason)


def _load(path: Path, name: str) -> ModuleType:
    if not path.exists():
        _unavailable(f"{path} is missing (the test needs the monorepo's backend plugin tests)")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


class Servers:
    """Servers started on first use and stopped by :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._redis: Any = None
        self._redis_url = os.environ.get("NUVOM_TEST_REDIS_URL")
        self._pg: Any = None
        self._pg_url = os.environ.get("NUVOM_TEST_POSTGRES_URL")
        self._cleanups: list[Any] = []

    def redis_url(self) -> str:
        if self._redis_url is None:
            pytest.importorskip("nuvom_backend_redis")
            helpers = _load(NETSERVERS / "redis_server.py", "netservers.redis_server")
            self._redis = helpers.start_server(self.directory / "redis")
            self._redis_url = str(self._redis.url)
        return self._redis_url

    def postgres_url(self) -> str:
        if self._pg_url is None:
            pytest.importorskip("nuvom_backend_postgres")
            helpers = _load(NETSERVERS / "pg_server.py", "netservers.pg_server")
            try:
                server = helpers.PgServer()
                server.start()
            except helpers.ServerUnavailable as exc:
                _unavailable(str(exc))
            self._pg = server
            self._pg_url = str(server.url)
        return self._pg_url

    def settings(self, backend: str) -> dict[str, str]:
        """The environment that points a project at a fresh store of ``backend``."""
        tag = uuid.uuid4().hex[:10]
        if backend == "redis":
            url, namespace = self.redis_url(), f"sched-{tag}"
            self._cleanups.append(("redis", url, namespace))
            return {"NUVOM_REDIS__URL": url, "NUVOM_REDIS__NAMESPACE": namespace}
        if backend == "postgres":
            url, schema = self.postgres_url(), f"nuvom_sched_{tag}"
            self._cleanups.append(("postgres", url, schema))
            return {"NUVOM_POSTGRES__URL": url, "NUVOM_POSTGRES__SCHEMA": schema}
        return {}

    def close(self) -> None:
        for kind, url, name in self._cleanups:
            try:
                if kind == "redis":
                    import redis

                    client = redis.Redis.from_url(url)
                    keys = list(client.scan_iter(match="{" + name + "}:*", count=1000))
                    if keys:
                        client.delete(*keys)
                    client.close()
                else:
                    import psycopg

                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            except Exception:  # a server of our own goes away below anyway
                pass
        if self._redis is not None:
            self._redis.stop()
        if self._pg is not None:
            self._pg.cleanup()
