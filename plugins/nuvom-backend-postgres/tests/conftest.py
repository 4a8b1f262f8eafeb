"""A real PostgreSQL server for the whole session (see ``tests/netservers``), and
backends on a schema emptied before each test.

``NUVOM_TEST_POSTGRES_URL`` points the tests at an existing server.  When no
server can be started, the tests are skipped with the reason; with
``NUVOM_CI=1`` (``.ci/run``) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from nuvom_backend_postgres import PostgresBackend

# pg_server and pg_url: the session's server, from tests/netservers/fixtures.py
# (registered by the repository's root conftest.py)


@pytest.fixture
def own_server(pg_server: Any) -> Any:
    """Tests that restart the server need one this session started."""
    if pg_server is None:
        pytest.skip("restarts the server: not done to the server NUVOM_TEST_POSTGRES_URL names")
    return pg_server


SCHEMA = f"nuvom_test_{os.getpid()}"


@pytest.fixture(scope="session")
def _migrated(pg_url: str) -> Iterator[str]:
    b = PostgresBackend(pg_url, schema=SCHEMA)
    b.open()
    b.close()
    yield SCHEMA
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')


@pytest.fixture
def schema(pg_url: str, _migrated: str) -> str:
    """The test schema, emptied."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'TRUNCATE "{_migrated}".jobs, "{_migrated}".jobs_done, "{_migrated}".workers, '
                     f'"{_migrated}".schedules')
    return _migrated


@pytest.fixture
def make_backend(pg_url: str, schema: str) -> Iterator[Callable[..., PostgresBackend]]:
    """``make_backend(**options)``: backends on the emptied schema, closed after the test."""
    opened: list[PostgresBackend] = []

    def make(**options: object) -> PostgresBackend:
        opened.append(PostgresBackend(pg_url, schema=schema, **options))  # type: ignore[arg-type]
        return opened[-1]

    yield make
    for b in opened:
        b.close()


@pytest.fixture
def backend(make_backend: Callable[..., PostgresBackend]) -> PostgresBackend:
    return make_backend()
