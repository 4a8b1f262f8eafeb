"""Task discovery benchmark: cold and warm scans of a generated project.

Generates a tree of ``--files`` Python files (default 10,000) in a temporary
directory, one in ``--task-every`` holding a Nuvom task (default 10, so about
1,000 tasks), plus a few foreign decorators and realistic filler code.  File
times are set one hour in the past, as in a real checkout (a file modified
within the last two seconds is re-hashed on the next scan, see
docs/discovery.md).

It then times, median of ``--repeat`` runs (default 3):

- cold refresh: no manifest; every file is read, hashed and parsed, and the
  manifest is written (what the first ``nuvom discover tasks`` does);
- warm refresh: the manifest is up to date; files are only stat()ed (what a
  worker start does on an unchanged project);
- the discoverer alone (no manifest I/O), cold and warm.

Run from the repository root:  python bench/discovery_bench.py
It exits non-zero if the warm refresh is not at least 10x faster than cold.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nuvom_discovery_ast import AstDiscoverer

from nuvom_support.manifest import load_manifest, refresh_manifest

FILLER = '''

class Model{i}:
    """A model with a few methods, like any application module."""

    def __init__(self, value: int) -> None:
        self.value = value

    def double(self) -> int:
        return self.value * 2

    def describe(self) -> str:
        return f"Model{i}({{self.value}})"


def helper_{i}(items: list[int]) -> dict[str, int]:
    total = 0
    for item in items:
        if item % 2:
            total += item
        else:
            total -= item
    return {{"total": total, "count": len(items)}}


CONSTANT_{i} = [n * {i} for n in range(10)]
'''

TASK_MODULE = '''"""Tasks of package {pkg}."""
import json
from nuvom import task

@task(retries=2, queue="q{q}", tags=["bench", "p{pkg}"], timeout_secs=30)
def process_{i}(payload: str) -> int:
    return len(json.loads(payload))
'''

FOREIGN_MODULE = '''"""A module with a foreign decorator (must not be found)."""
from celery import Celery
app = Celery("x")

@app.task
def not_nuvom_{i}():
    return None
'''

PLAIN_MODULE = '''"""Ordinary application code."""
import os
import typing
'''


def generate(root: Path, files: int, task_every: int, per_dir: int = 50) -> int:
    """Write the tree; return the number of tasks in it."""
    tasks = 0
    old = time.time() - 3600
    for i in range(files):
        pkg = i // per_dir
        directory = root / f"pkg{pkg // 20}" / f"sub{pkg}"
        if i % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "__init__.py").write_text("", encoding="utf-8")
            (directory.parent / "__init__.py").write_text("", encoding="utf-8")
        if i % task_every == 0:
            head = TASK_MODULE.format(pkg=pkg, q=i % 4, i=i)
            tasks += 1
        elif i % 97 == 1:
            head = FOREIGN_MODULE.format(i=i)
        else:
            head = PLAIN_MODULE
        path = directory / f"mod{i}.py"
        path.write_text(head + FILLER.format(i=i), encoding="utf-8")
    for path in root.rglob("*.py"):
        os.utime(path, (old, old))
    return tasks


def median_time(fn: Callable[[], object], repeat: int, before: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--task-every", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="nuvom-discovery-bench-"))
    try:
        root = workdir / "project"
        root.mkdir()
        t0 = time.perf_counter()
        expected = generate(root, args.files, args.task_every)
        py_files = sum(1 for _ in root.rglob("*.py"))
        print(f"generated {py_files} .py files ({args.files} modules + __init__.py), "
              f"{expected} tasks, in {time.perf_counter() - t0:.1f}s at {root}")
        manifest = root / ".nuvom" / "manifest.json"

        def remove_manifest() -> None:
            manifest.unlink(missing_ok=True)

        cold = median_time(lambda: refresh_manifest(AstDiscoverer(), root, manifest), args.repeat, remove_manifest)
        found = load_manifest(manifest)
        assert found is not None and len(found.tasks) == expected, "wrong number of tasks found"
        size_kib = manifest.stat().st_size / 1024
        warm_diff = refresh_manifest(AstDiscoverer(), root, manifest)
        assert warm_diff.files_parsed == 0 and not warm_diff.written, "warm refresh parsed or wrote"
        warm = median_time(lambda: refresh_manifest(AstDiscoverer(), root, manifest), args.repeat)

        discoverer = AstDiscoverer()
        scan_cold = median_time(lambda: discoverer.discover(str(root)), args.repeat)
        cache = discoverer.discover(str(root)).files
        scan_warm = median_time(lambda: discoverer.discover(str(root), cache=cache), args.repeat)
        assert discoverer.files_read == 0

        print(f"{'what':<40}{'median of ' + str(args.repeat):>16}")
        rows = [
            ("cold refresh (parse all, write manifest)", cold),
            ("warm refresh (stat only, no write)", warm),
            ("discoverer alone, cold", scan_cold),
            ("discoverer alone, warm (cache in memory)", scan_warm),
        ]
        for label, secs in rows:
            print(f"{label:<40}{secs * 1000:>13.0f} ms")
        ratio = cold / warm
        print(f"manifest size: {size_kib:.0f} KiB")
        print(f"warm refresh is {ratio:.1f}x faster than cold (required: >= 10x); "
              f"discoverer alone: {scan_cold / scan_warm:.1f}x")
        return 0 if ratio >= 10 else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
