"""Fixtures of the nuvom-discovery-ast tests: a project tree builder."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

#: mtime given to files that should look old (outside the "racy" window).
OLD_MTIME_NS = 1_600_000_000 * 1_000_000_000

WriteTree = Callable[..., Path]


@pytest.fixture
def write_tree(tmp_path: Path) -> WriteTree:
    """``write_tree({"pkg/m.py": "source"}, old=True)`` writes files under
    ``tmp_path / "proj"`` (dedented) and returns that root.  ``old=True``
    sets every written file's mtime far in the past, as in a real project."""
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)

    def write(files: dict[str, str | bytes], old: bool = False) -> Path:
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content), encoding="utf-8")
            if old:
                os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
        return root

    return write


@pytest.fixture
def old_mtime_ns() -> int:
    """The mtime (ns) :func:`write_tree` gives files written with ``old=True``."""
    return OLD_MTIME_NS
