"""``make_project``: a reliability :class:`~reliability.harness.Project` on any
backend.  For a networked one it takes this session's server (the shared
``redis_server`` / ``pg_url`` fixtures, started on first use) and gives the
project a fresh Redis namespace or PostgreSQL schema, deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import Project


def _redis_env(request: pytest.FixtureRequest, cleanups: list[Callable[[], None]]) -> dict[str, str]:
    server = request.getfixturevalue("redis_server")
    namespace = f"rel-{uuid.uuid4().hex[:12]}"

    def drop() -> None:
        import redis

        client = redis.Redis.from_url(server.url)
        try:
            keys = list(client.scan_iter(match="{" + namespace + "}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start:start + 1000])
        except redis.RedisError:  # a test that stopped its server: nothing to tidy
            pass
        finally:
            client.close()

    cleanups.append(drop)
    return {"NUVOM_REDIS__URL": server.url, "NUVOM_REDIS__NAMESPACE": namespace}


def _postgres_env(request: pytest.FixtureRequest, cleanups: list[Callable[[], None]]) -> dict[str, str]:
    url = request.getfixturevalue("pg_url")
    schema = f"nuvom_rel_{uuid.uuid4().hex[:12]}"

    def drop() -> None:
        import psycopg

        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except psycopg.Error:
            pass

    cleanups.append(drop)
    return {"NUVOM_POSTGRES__URL": url, "NUVOM_POSTGRES__SCHEMA": schema}


@pytest.fixture
def make_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """``make_project(backend, **fields)``: a new :class:`Project` (closed at the end)."""
    made: list[Project] = []
    cleanups: list[Callable[[], None]] = []

    def make(backend: str, **fields: Any) -> Project:
        env: dict[str, str] = {}
        if backend == "redis":
            env = _redis_env(request, cleanups)
        elif backend == "postgres":
            env = _postgres_env(request, cleanups)
        root = tmp_path / ("proj" if not made else f"proj{len(made)}")
        made.append(Project(root, backend, plugin_env={**env, **fields.pop("plugin_env", {})}, **fields))
        return made[-1]

    yield make
    for project in made:
        project.close()
    for cleanup in cleanups:
        cleanup()
