"""A real PostgreSQL server for the whole session (see ``_pg_server.py``), and
backends on a schema emptied before each test.

``NUVOM_TEST_POSTGRES_URL`` points the tests at an existing server.  When no
server can be started, the tests are skipped with the reason; with
``NUVOM_CI=1`` (``.ci/run``) they fail instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from nuvom_backend_postgres import PostgresBackend

sys.path.insert(0, str(Path(__file__).parent))

from _pg_server import PgServer, ServerUnavailable  # noqa: E402


def _unavailable(reason: str) -> None:
    if os.environ.get("NUVOM_CI") == "1":
        pytest.fail(f"NUVOM_CI=1 and no PostgreSQL server for the tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    """The server this session started (``None`` with ``NUVOM_TEST_POSTGRES_URL``)."""
    if os.environ.get("NUVOM_TEST_POSTGRES_URL"):
        yield None
        return
    try:
        server = PgServer()
        server.start()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
        return
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer | None) -> str:
    return pg_server.url if pg_server is not None else os.environ["NUVOM_TEST_POSTGRES_URL"]


@pytest.fixture
def own_server(pg_server: PgServer | None) -> PgServer:
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
