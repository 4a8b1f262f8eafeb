"""Importing task modules on a worker, with the project root on ``sys.path``.

A module that fails to import is reported once with its traceback; the other
modules, and the tasks they define, keep working.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

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
        if name in sys.modules:
            return sys.modules[name]
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
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
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            problems.append(ImportProblem(spec, f"{type(exc).__name__}: {exc}", tb))
            log.error("could not import task module %s; its tasks will be dead-lettered as unknown "
                      "until it is fixed:\n%s", spec, tb)
    return problems
