"""Walk a project tree and yield the Python files discovery should read.

Excluded directories are pruned (never descended into).  What is excluded:
:data:`DEFAULT_EXCLUDES` by directory name at any depth, the patterns of
``.nuvomignore`` at the root and the ``exclude`` globs (gitignore rules, via
``pathspec``).  With ``include`` globs, only files matching one of them are
kept.  A symlinked directory is followed once per real directory, so a link
pointing back up the tree cannot make the walk loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

#: Directory names never scanned, at any depth.
DEFAULT_EXCLUDES = frozenset({
    ".git", ".hg", ".svn",
    ".venv", "venv",
    "__pycache__", "node_modules",
    "build", "dist", "site-packages",
    ".nuvom", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs",
})
IGNORE_FILE = ".nuvomignore"


@dataclass
class SourceFile:
    """A file to read: its path relative to the root (posix) and its stat."""

    rel: str
    path: str
    size: int
    mtime_ns: int


@dataclass
class WalkResult:
    files: list[SourceFile] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def read_ignore_file(root: Path) -> list[str]:
    """The patterns of ``<root>/.nuvomignore`` (empty if there is none)."""
    path = root / IGNORE_FILE
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return text.splitlines()


def _spec(lines: Sequence[str]) -> pathspec.PathSpec | None:
    cleaned = [line for line in lines if line.strip()]
    return pathspec.GitIgnoreSpec.from_lines(cleaned) if cleaned else None


def walk(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> WalkResult:
    """The ``*.py`` files under ``root`` that discovery should read, sorted."""
    ignore = _spec([*read_ignore_file(root), *exclude])
    wanted = _spec(include)
    result = WalkResult()
    seen_dirs: set[tuple[int, int]] = set()
    root_stat = root.stat()
    seen_dirs.add((root_stat.st_dev, root_stat.st_ino))
    for entry, rel in _entries(root, "", ignore, seen_dirs, result):
        if wanted is not None and not wanted.match_file(rel):
            continue
        try:
            st = entry.stat()  # follows a symlinked file
        except OSError:
            continue  # a dangling symlink: nothing to read
        result.files.append(SourceFile(rel, entry.path, st.st_size, st.st_mtime_ns))
    return result


def _entries(
    directory: Path | str,
    rel_dir: str,
    ignore: pathspec.PathSpec | None,
    seen_dirs: set[tuple[int, int]],
    result: WalkResult,
) -> Iterator[tuple[os.DirEntry[str], str]]:
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        result.problems.append({
            "path": rel_dir or ".", "line": None, "kind": "read_error",
            "message": f"cannot list the directory ({exc.strerror or exc}); it was skipped.",
        })
        return
    for entry in entries:
        rel = f"{rel_dir}{entry.name}"
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            continue
        if is_dir:
            if entry.name in DEFAULT_EXCLUDES or (ignore is not None and ignore.match_file(rel + "/")):
                continue
            try:
                st = os.stat(entry.path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                continue  # a symlink to a directory already walked (or to an ancestor)
            seen_dirs.add(key)
            yield from _entries(entry.path, rel + "/", ignore, seen_dirs, result)
        elif entry.name.endswith(".py"):
            if ignore is not None and ignore.match_file(rel):
                continue
            yield entry, rel
