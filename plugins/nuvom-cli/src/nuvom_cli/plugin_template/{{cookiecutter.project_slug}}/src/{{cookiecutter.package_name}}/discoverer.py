"""A task discoverer built on the standard ``ast`` module: it reads source
files and never imports them.

Finds functions decorated with Nuvom's ``task`` (``@task``, ``@task(...)``,
``@nuvom.task``, under any import alias), records their module, qualified
name, file, line and literal options, reports files it cannot parse, and
caches per file (size and mtime) so a warm scan parses nothing.  It passes
the kernel's DiscovererContract.
"""

from __future__ import annotations

import ast
import fnmatch
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nuvom_kernel.contracts import DiscoveryReport
from nuvom_kernel.models import TaskInfo

SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "build", "dist"}


def _module_name(rel: str, src_is_package: bool) -> str:
    parts = rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if len(parts) > 1 and parts[0] == "src" and not src_is_package:
        parts = parts[1:]
    return ".".join(parts)


def _selected(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    def matches(pattern: str) -> bool:
        if pattern.endswith("/"):
            return rel.startswith(pattern)
        return fnmatch.fnmatch(rel, pattern)

    if any(matches(p) for p in exclude):
        return False
    return not include or any(matches(p) for p in include)


class _TaskFinder(ast.NodeVisitor):
    def __init__(self, module: str, rel: str) -> None:
        self.module, self.rel = module, rel
        self.task_names: set[str] = set()  # names bound to nuvom.task
        self.nuvom_names: set[str] = set()  # names bound to the nuvom module
        self.scope: list[str] = []
        self.tasks: list[dict[str, Any]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "nuvom":
                self.nuvom_names.add(alias.asname or "nuvom")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "nuvom":
            for alias in node.names:
                if alias.name == "task":
                    self.task_names.add(alias.asname or "task")

    def _is_task(self, expr: ast.expr) -> bool:
        target = expr.func if isinstance(expr, ast.Call) else expr
        if isinstance(target, ast.Name):
            return target.id in self.task_names
        return (isinstance(target, ast.Attribute) and target.attr == "task"
                and isinstance(target.value, ast.Name) and target.value.id in self.nuvom_names)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        qualname = ".".join([*self.scope, node.name])
        for decorator in node.decorator_list:
            if not self._is_task(decorator):
                continue
            options: dict[str, Any] = {}
            if isinstance(decorator, ast.Call):
                for keyword in decorator.keywords:
                    if keyword.arg is None:
                        continue
                    try:
                        options[keyword.arg] = ast.literal_eval(keyword.value)
                    except ValueError:  # not a literal: known only at import time
                        continue
            name = options.pop("name", None)
            self.tasks.append(TaskInfo(
                name=str(name) if name else qualname, module=self.module, qualname=qualname, path=self.rel,
                line=node.lineno, is_async=isinstance(node, ast.AsyncFunctionDef), options=options,
            ).model_dump())
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()


class AstTaskDiscoverer:
    """Implements Discoverer (nuvom_kernel.contracts)."""

    def discover(self, root: str, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                 cache: Mapping[str, dict[str, Any]] | None = None) -> DiscoveryReport:
        base = Path(root)
        src_is_package = (base / "src" / "__init__.py").is_file()
        report = DiscoveryReport()
        for rel in self._walk(base):
            if not _selected(rel, include, exclude):
                continue
            report.files_scanned += 1
            stat = (base / rel).stat()
            entry = (cache or {}).get(rel)
            if not (entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns):
                entry = self._parse(base, rel, _module_name(rel, src_is_package), stat.st_size, stat.st_mtime_ns)
                report.files_parsed += 1
            report.files[rel] = entry
            report.tasks.extend(TaskInfo.model_validate(t) for t in entry["tasks"])
            report.problems.extend(entry["problems"])
        report.tasks.sort(key=lambda t: (t.path or "", t.line or 0))
        return report

    def _walk(self, base: Path) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
            for filename in sorted(filenames):
                if filename.endswith(".py"):
                    found.append((Path(dirpath) / filename).relative_to(base).as_posix())
        return found

    def _parse(self, base: Path, rel: str, module: str, size: int, mtime_ns: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"size": size, "mtime_ns": mtime_ns, "tasks": [], "problems": []}
        try:
            tree = ast.parse((base / rel).read_bytes(), filename=rel)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            entry["problems"].append({"path": rel, "line": line, "kind": "syntax_error", "message": str(exc)})
            return entry
        finder = _TaskFinder(module, rel)
        finder.visit(tree)
        entry["tasks"] = finder.tasks
        return entry
