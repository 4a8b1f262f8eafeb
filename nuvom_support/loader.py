"""Importing task modules on a worker, with the project root on ``sys.path``.

A module that fails to import is reported once with its traceback; the other
modules, and the tasks they define, keep working.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from nuvom_kernel.modules import exec_file_module
from nuvom_kernel.tracebacks import user_traceback

log = logging.getLogger("nuvom.loader")


@dataclass
class ImportProblem:
    module: str
    error: str
    traceback: str


def ensure_on_path(root: Path) -> None:
    entry = str(root.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)


def import_module_or_file(spec: str, root: Path) -> ModuleType:
    """Import ``pkg.mod`` (from the project root or the environment) or ``path/to/file.py``."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec)
        if not path.is_absolute():
            path = root / path
        path = path.resolve()
        if not path.is_file():
            raise FileNotFoundError(f"task module file {path} does not exist")
        try:
            rel = path.relative_to(root.resolve()).with_suffix("")
            name = ".".join(rel.parts)
        except ValueError:
            name = path.stem
        return exec_file_module(name, path)
    return importlib.import_module(spec)


def import_task_modules(modules: list[str], root: Path) -> list[ImportProblem]:
    """Import each module; return (and log once) the ones that failed."""
    ensure_on_path(root)
    problems: list[ImportProblem] = []
    for spec in dict.fromkeys(modules):
        try:
            import_module_or_file(spec, root)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            tb = user_traceback(exc)
            problems.append(ImportProblem(spec, f"{type(exc).__name__}: {exc}", tb))
            log.error("could not import task module %s; its tasks will be dead-lettered as unknown "
                      "until it is fixed:\n%s", spec, tb)
    return problems


@dataclass
class ManifestLoad:
    """What a worker imported from the discovery manifest."""

    path: Path
    modules: list[str]
    tasks: list[str]
    problems: list[ImportProblem]
    refreshed: bool = False
    note: str | None = None


def pick_discoverer(app: Any) -> Any | None:
    """The ``ast`` discoverer if installed, else any installed one, else None."""
    names = app.plugins.registries["discoverers"].names()
    if not names:
        return None
    return app.create_discoverer("ast" if "ast" in names else names[0])


def load_from_manifest(app: Any, *, refresh: bool = True) -> ManifestLoad:
    """Refresh the manifest (cheap: unchanged files are not parsed) and import
    every module it lists, with the project root (and src/ roots) on sys.path.

    Paths are resolved against the project directory (``app.root``, where the
    command runs), never against the absolute root recorded in the manifest.
    Without a discoverer, a manifest that cannot be trusted (outside the
    project, another owner, writable by others) raises
    :class:`~nuvom_support.files.UntrustedFileError`.
    """
    from nuvom_support.manifest import (
        default_manifest_path,
        load_manifest,
        manifest_import_paths,
        manifest_modules,
        refresh_manifest,
        scan_root_of,
    )

    project = Path(app.root)
    path = default_manifest_path(app.settings, project)
    manifest = None
    refreshed = False
    note = None
    discoverer = pick_discoverer(app) if refresh else None
    if discoverer is not None:
        diff = refresh_manifest(discoverer, None, path, project=project)
        manifest, refreshed = diff.manifest, True
    else:
        manifest = load_manifest(path, project)
        if manifest is None:
            note = "no task manifest and no discoverer installed: pass --tasks MODULE or install nuvom-discovery-ast"
    if manifest is None:
        return ManifestLoad(path, [], [], [], refreshed, note)
    scan_root = scan_root_of(manifest, project)
    for directory in reversed(manifest_import_paths(manifest, scan_root)):
        ensure_on_path(directory)
    by_task = manifest_modules(manifest)
    modules = list(dict.fromkeys(by_task.values()))
    problems = import_task_modules(modules, scan_root)
    failed = {p.module for p in problems}
    tasks = sorted(name for name, module in by_task.items() if module not in failed)
    return ManifestLoad(path, modules, tasks, problems, refreshed, note)
