"""Real servers for the tests of the networked backends (no fakes, no mocks).

- :mod:`netservers.redis_server`: ``redis-server`` on a free 127.0.0.1 port;
- :mod:`netservers.pg_server`: a throwaway PostgreSQL cluster (initdb);
- :mod:`netservers.fixtures`: the session fixtures (``redis_server``,
  ``pg_server``, ``pg_url``) every test directory shares; the repository's
  root ``conftest.py`` registers them, so the plugins' tests and
  ``tests/reliability`` use one server of each kind per session;
- ``skew/sitecustomize.py``: put on a worker process's ``PYTHONPATH`` with
  ``NUVOM_TEST_CLOCK_SKEW=<seconds>`` to make it a host whose clock is off.

``NUVOM_TEST_REDIS_URL`` / ``NUVOM_TEST_POSTGRES_URL`` name existing servers
instead.  With ``NUVOM_CI=1`` a server that cannot be started fails the
tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os

import pytest


def unavailable(what: str, reason: str) -> None:
    """Skip (or with ``NUVOM_CI=1`` fail) a test that needs a server that cannot run here."""
    if os.environ.get("NUVOM_CI") == "1":
        pytest.fail(f"NUVOM_CI=1 and no {what} server for the tests: {reason}")
    pytest.skip(f"no {what} server: {reason}")
