"""The per-file cache: unchanged files are not read or parsed again (counted, not timed)."""

from __future__ import annotations

import os
from pathlib import Path

from nuvom_discovery_ast import AstDiscoverer
from nuvom_discovery_ast.parser import PARSER_VERSION

TASK = "from nuvom import task\n@task\ndef {name}(): ...\n"


def tree(write_tree, count: int = 5, old: bool = True) -> Path:
    files = {f"pkg/m{i}.py": TASK.format(name=f"t{i}") for i in range(count)}
    files["pkg/__init__.py"] = ""
    return write_tree(files, old=old)


def test_discovery_cache_entries_describe_each_file(write_tree, old_mtime_ns: int) -> None:
    root = tree(write_tree, count=1)
    report = AstDiscoverer().discover(str(root))
    entry = report.files["pkg/m0.py"]
    data = (root / "pkg" / "m0.py").read_bytes()
    assert entry["size"] == len(data)
    assert entry["mtime_ns"] == old_mtime_ns
    assert len(entry["hash"]) == 32
    assert entry["parser"] == PARSER_VERSION
    assert [t["name"] for t in entry["tasks"]] == ["t0"]
    assert entry["problems"] == []
    assert "racy" not in entry


def test_discovery_warm_scan_reads_and_parses_nothing(write_tree) -> None:
    root = tree(write_tree)
    discoverer = AstDiscoverer()
    cold = discoverer.discover(str(root))
    assert (cold.files_scanned, cold.files_parsed, discoverer.files_read) == (6, 6, 6)
    warm = discoverer.discover(str(root), cache=cold.files)
    assert (warm.files_scanned, warm.files_parsed, discoverer.files_read) == (6, 0, 0)
    assert warm.tasks == cold.tasks
    assert warm.files == cold.files


def test_discovery_touching_one_file_reparses_only_it(write_tree, old_mtime_ns: int) -> None:
    root = tree(write_tree)
    discoverer = AstDiscoverer()
    cold = discoverer.discover(str(root))
    changed = root / "pkg" / "m3.py"
    changed.write_text(TASK.format(name="renamed"), encoding="utf-8")
    os.utime(changed, ns=(old_mtime_ns + 10**9, old_mtime_ns + 10**9))
    warm = discoverer.discover(str(root), cache=cold.files)
    assert (warm.files_parsed, discoverer.files_read) == (1, 1)
    assert sorted(t.name for t in warm.tasks) == ["renamed", "t0", "t1", "t2", "t4"]


def test_discovery_same_content_new_mtime_is_hashed_not_parsed(write_tree, old_mtime_ns: int) -> None:
    root = tree(write_tree)
    discoverer = AstDiscoverer()
    cold = discoverer.discover(str(root))
    os.utime(root / "pkg" / "m1.py", ns=(old_mtime_ns + 5 * 10**9, old_mtime_ns + 5 * 10**9))
    warm = discoverer.discover(str(root), cache=cold.files)
    assert (warm.files_parsed, discoverer.files_read) == (0, 1)
    assert warm.files["pkg/m1.py"]["mtime_ns"] == old_mtime_ns + 5 * 10**9


def test_discovery_recent_file_is_verified_by_hash(write_tree) -> None:
    """A file written just now could change again within the same mtime tick
    with the same size: its next scan compares the hash instead of trusting stat."""
    root = write_tree({"jobs.py": TASK.format(name="aaaa")})
    path = root / "jobs.py"
    discoverer = AstDiscoverer()
    first = discoverer.discover(str(root))
    assert first.files["jobs.py"]["racy"] is True
    stat = path.stat()
    path.write_text(TASK.format(name="bbbb"), encoding="utf-8")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    second = discoverer.discover(str(root), cache=first.files)
    assert second.files_parsed == 1
    assert [t.name for t in second.tasks] == ["bbbb"]
    third = discoverer.discover(str(root), cache=second.files)
    assert (third.files_parsed, discoverer.files_read) == (0, 1)


def test_discovery_problems_are_cached_with_the_file(write_tree) -> None:
    root = write_tree({"bad.py": "def f(:\n"}, old=True)
    discoverer = AstDiscoverer()
    cold = discoverer.discover(str(root))
    warm = discoverer.discover(str(root), cache=cold.files)
    assert warm.files_parsed == 0
    assert [p["kind"] for p in warm.problems] == ["syntax_error"]


def test_discovery_ignores_unusable_cache_entries(write_tree) -> None:
    root = tree(write_tree, count=3)
    discoverer = AstDiscoverer()
    cold = discoverer.discover(str(root))
    cache = dict(cold.files)
    cache["pkg/m0.py"] = {**cache["pkg/m0.py"], "parser": PARSER_VERSION + 1}
    cache["pkg/m1.py"] = {"size": "junk"}
    cache["pkg/m2.py"] = {**cache["pkg/m2.py"], "tasks": [{"no": "name"}]}
    cache["gone.py"] = cold.files["pkg/m0.py"]
    warm = discoverer.discover(str(root), cache=cache)
    assert warm.files_parsed == 3
    assert sorted(warm.files) == ["pkg/__init__.py", "pkg/m0.py", "pkg/m1.py", "pkg/m2.py"]
    assert sorted(t.name for t in warm.tasks) == ["t0", "t1", "t2"]


def test_discovery_duplicates_are_recomputed_from_cached_files(write_tree) -> None:
    root = write_tree({"a.py": TASK.format(name="same")}, old=True)
    discoverer = AstDiscoverer()
    cold = discoverer.discover(str(root))
    write_tree({"b.py": TASK.format(name="same")}, old=True)
    warm = discoverer.discover(str(root), cache=cold.files)
    assert warm.files_parsed == 1
    assert [p["kind"] for p in warm.problems] == ["duplicate_name"]
