"""Fixtures shared by every test directory (``tests/`` and ``plugins/*/tests``):
the real Redis and PostgreSQL servers of ``tests/netservers`` (one of each
per session, started on first use)."""

pytest_plugins = ["netservers.fixtures"]
