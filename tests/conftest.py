"""Fixtures for the cross-package tests (helpers live in support.py)."""

from __future__ import annotations

from support import app, backend_name, memory_app  # noqa: F401 - pytest fixtures
