"""The ``ast`` discoverer: walk the tree, parse what changed, assemble the report."""

from __future__ import annotations

import hashlib
import keyword
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nuvom_discovery_ast.parser import PARSER_VERSION, parse_source, problem
from nuvom_discovery_ast.walker import SourceFile, walk
from nuvom_kernel.contracts import DiscoveryReport
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.models import TaskInfo

#: A file modified this recently may change again within the same mtime tick
#: without its size changing; its next scan checks the content hash instead of
#: trusting size and mtime (git's "racy clean" rule).
RACY_WINDOW_NS = 2_000_000_000

ProgressCallback = Callable[[int, int], None]


def file_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def module_for(rel: str, src_is_package: bool) -> str | None:
    """The importable module name of the file at ``rel`` (posix, relative to
    the root), or ``None`` if no import statement can name it.

    ``a/b/c.py`` -> ``a.b.c``; ``a/b/__init__.py`` -> ``a.b``; with a
    ``src/`` directory that is not itself a package (src layout),
    ``src/pkg/mod.py`` -> ``pkg.mod``.
    """
    parts = rel.split("/")
    stem = parts[-1][: -len(".py")]
    names = parts[:-1] if stem == "__init__" else [*parts[:-1], stem]
    if len(names) > 1 and names[0] == "src" and not src_is_package:
        names = names[1:]
    if not names or not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
        return None
    return ".".join(names)


def _usable_entry(entry: Any) -> bool:
    """A cache entry from disk is trusted only if it has the expected shape."""
    if type(entry) is not dict or entry.get("parser") != PARSER_VERSION:
        return False
    tasks, problems = entry.get("tasks"), entry.get("problems")
    return (
        type(entry.get("size")) is int
        and type(entry.get("mtime_ns")) is int
        and type(entry.get("hash")) is str
        and type(tasks) is list
        and type(problems) is list
        and (not tasks or all(type(t) is dict and type(t.get("name")) is str for t in tasks))
        and (not problems or all(type(p) is dict for p in problems))
    )


class AstDiscoverer:
    """Finds ``@task`` functions by parsing source files; never imports them.

    ``progress(done, total)`` is called as files are processed (first with
    ``done == 0``).  After :meth:`discover`, :attr:`files_read` counts the files
    whose bytes were read (the others were reused from the cache on size and
    mtime alone).
    """

    name = "ast"

    def __init__(self, progress: ProgressCallback | None = None) -> None:
        self.progress = progress
        self.files_read = 0

    def discover(
        self,
        root: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        cache: Mapping[str, dict[str, Any]] | None = None,
    ) -> DiscoveryReport:
        root_path = Path(root)
        if not root_path.is_dir():
            raise ConfigError(
                f"discovery root {str(root)!r} is not a directory; pass an existing project "
                "directory (--root) or set NUVOM_PROJECT_ROOT"
            )
        walked = walk(root_path, include, exclude)
        report = DiscoveryReport(problems=list(walked.problems), files_scanned=len(walked.files))
        self.files_read = 0
        total = len(walked.files)
        if self.progress:
            self.progress(0, total)
        now_ns = time.time_ns()
        for done, source in enumerate(walked.files, 1):
            cached = cache.get(source.rel) if cache is not None else None
            report.files[source.rel] = self._entry(source, cached if _usable_entry(cached) else None, now_ns, report)
            if self.progress:
                self.progress(done, total)
        self._assemble(report, src_is_package=(root_path / "src" / "__init__.py").is_file())
        return report

    def _entry(
        self, source: SourceFile, cached: dict[str, Any] | None, now_ns: int, report: DiscoveryReport
    ) -> dict[str, Any]:
        if (
            cached is not None
            and not cached.get("racy")
            and cached["size"] == source.size
            and cached["mtime_ns"] == source.mtime_ns
        ):
            return cached
        racy = now_ns - source.mtime_ns < RACY_WINDOW_NS
        try:
            with open(source.path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            return {
                "parser": PARSER_VERSION, "size": source.size, "mtime_ns": -1, "hash": "",
                "tasks": [],
                "problems": [problem(source.rel, None, "read_error",
                                     f"cannot read the file ({exc.strerror or exc}); it was skipped.")],
            }
        self.files_read += 1
        digest = file_hash(data)
        if cached is not None and cached["hash"] == digest:
            entry = {**cached, "size": source.size, "mtime_ns": source.mtime_ns}
        else:
            parsed = parse_source(data, source.rel)
            report.files_parsed += 1
            entry = {
                "parser": PARSER_VERSION, "size": source.size, "mtime_ns": source.mtime_ns,
                "hash": digest, "tasks": parsed.tasks, "problems": parsed.problems,
            }
        entry.pop("racy", None)
        if racy:
            entry["racy"] = True
        return entry

    def _assemble(self, report: DiscoveryReport, src_is_package: bool) -> None:
        found: list[TaskInfo] = []
        for rel, entry in report.files.items():
            report.problems.extend(entry["problems"])
            if not entry["tasks"]:
                continue
            module = module_for(rel, src_is_package)
            if module is None:
                report.problems.append(problem(
                    rel, entry["tasks"][0].get("line"), "unimportable_module",
                    f"the file has {len(entry['tasks'])} task(s) but its path is not an importable "
                    "module name (every directory and the file name must be Python identifiers); "
                    "rename it, or exclude it. Its tasks are not listed.",
                ))
                continue
            for task in entry["tasks"]:
                found.append(TaskInfo(
                    name=task["name"], module=module, qualname=task.get("qualname", task["name"]),
                    path=rel, line=task.get("line"), is_async=bool(task.get("is_async")),
                    options=dict(task.get("options") or {}),
                ))
        found.sort(key=lambda t: (t.path or "", t.line or 0))
        first: dict[str, TaskInfo] = {}
        for task in found:
            kept = first.setdefault(task.name, task)
            if kept is task:
                report.tasks.append(task)
                continue
            here, there = f"{task.path}:{task.line}", f"{kept.path}:{kept.line}"
            report.problems.append(problem(
                task.path or "", task.line, "duplicate_name",
                f"task name {task.name!r} is used twice: {there} ({kept.qualname}) and {here} "
                f"({task.qualname}); the one at {there} is listed. Give one of them another "
                "name with @task(name=...).",
                name=task.name, locations=[there, here],
            ))
        report.problems.sort(key=lambda p: (str(p.get("path")), p.get("line") or 0, str(p.get("kind"))))
