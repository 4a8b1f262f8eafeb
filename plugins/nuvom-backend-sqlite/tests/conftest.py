from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nuvom_backend_sqlite import SqliteBackend


@pytest.fixture(params=["returning", "fallback"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteBackend]:
    """Both claim paths: UPDATE ... RETURNING and the SQLite < 3.35 fallback."""
    b = SqliteBackend(tmp_path / "q.db", use_returning=request.param == "returning")
    yield b
    b.close()
