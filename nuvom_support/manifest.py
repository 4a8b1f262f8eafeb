"""The task manifest: what discovery found, kept in ``.nuvom/manifest.json``.

The manifest lists every task (name, module, qualified name, file path
relative to the project root, line, static options), the per-file cache a
discoverer uses to skip unchanged files, and the problems found.  Workers
read it to know which module to import for a task name, so a job for a task
that is not in the manifest is never imported by guesswork.

Typical use (the worker, ``nuvom discover tasks``)::

    diff = refresh_manifest(discoverer, root, default_manifest_path(settings, root))
    modules = manifest_modules(diff.manifest)        # {task name: module}
    paths = manifest_import_paths(diff.manifest)     # directories for sys.path
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nuvom_kernel.errors import NuvomError
from nuvom_kernel.models import TaskInfo, now
from nuvom_support.files import (
    UntrustedFileError,
    atomic_write,
    check_trusted_file,
)

if TYPE_CHECKING:
    from nuvom_kernel.contracts import Discoverer
    from nuvom_kernel.settings import NuvomSettings

#: Format version written by this Nuvom.  Nuvom 0.11 wrote the string "1.0".
MANIFEST_VERSION = 2

logger = logging.getLogger("nuvom.manifest")


class ManifestVersionError(NuvomError):
    """The manifest was written by a newer Nuvom than this one."""


class ManifestTask(BaseModel):
    """One task as discovery saw it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    module: str
    qualname: str
    #: file path relative to the root, posix separators
    path: str
    line: int | None = None
    is_async: bool = False
    #: the decorator's literal keyword arguments (``name`` excluded)
    options: dict[str, Any] = Field(default_factory=dict)
    #: directory (relative to the root, posix; "" for the root itself) that
    #: must be on ``sys.path`` for ``module`` to import ("src" in a src layout)
    import_root: str = ""

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def differences(self, other: ManifestTask) -> list[str]:
        """The fields (module, qualname, path, line, is_async, options) that differ."""
        fields = ("module", "qualname", "path", "line", "is_async", "options")
        return [f for f in fields if getattr(self, f) != getattr(other, f)]


class Manifest(BaseModel):
    """The whole file.  ``tasks`` is sorted by name; names are unique."""

    model_config = ConfigDict(extra="ignore")

    version: int = Field(default=MANIFEST_VERSION, strict=True)
    generated_at: float = Field(default_factory=now)
    #: absolute path of the scanned root when the manifest was written (shown
    #: to people; never used to find code: a copied project would run the old copy)
    root: str
    #: the scanned root relative to the project directory (posix, "" for the
    #: project itself); what workers resolve against where they run
    scan_root: str | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    tasks: list[ManifestTask] = Field(default_factory=list)
    #: per-file cache of the discoverer, keyed by relative posix path
    files: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: each: {"path", "line", "kind", "message", ...}
    problems: list[dict[str, Any]] = Field(default_factory=list)

    def task_map(self) -> dict[str, ManifestTask]:
        return {t.name: t for t in self.tasks}


@dataclass
class ModifiedTask:
    before: ManifestTask
    after: ManifestTask
    changed: list[str]


@dataclass
class ManifestDiff:
    """What :func:`refresh_manifest` changed, and what discovery reported."""

    manifest: Manifest
    path: Path
    added: list[ManifestTask] = field(default_factory=list)
    removed: list[ManifestTask] = field(default_factory=list)
    modified: list[ModifiedTask] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    files_scanned: int = 0
    files_parsed: int = 0
    #: True if the file was (re)written
    written: bool = False
    #: True if there was no usable manifest before (missing, older, unreadable)
    created: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.path),
            "root": self.manifest.root,
            "written": self.written,
            "created": self.created,
            "files_scanned": self.files_scanned,
            "files_parsed": self.files_parsed,
            "tasks": len(self.manifest.tasks),
            "added": [t.model_dump(mode="json") for t in self.added],
            "removed": [t.model_dump(mode="json") for t in self.removed],
            "modified": [
                {"name": m.after.name, "changed": m.changed,
                 "before": m.before.model_dump(mode="json"), "after": m.after.model_dump(mode="json")}
                for m in self.modified
            ],
            "problems": self.problems,
        }


def default_manifest_path(settings: NuvomSettings, root: str | os.PathLike[str] | None = None) -> Path:
    """``settings.manifest_path`` resolved against ``root`` (default: the project root)."""
    return settings.resolve_path(settings.manifest_path, root)


def import_root_of(path: str, module: str) -> str:
    """The directory that must be on ``sys.path`` for ``module`` (found at
    ``path``, relative posix) to import: ``("src/pkg/m.py", "pkg.m") -> "src"``."""
    parts = path[: -len(".py")].split("/") if path.endswith(".py") else path.split("/")
    if parts and parts[-1] == "__init__":
        parts.pop()
    names = module.split(".")
    if len(names) > len(parts) or parts[-len(names):] != names:
        return ""
    return "/".join(parts[: -len(names)])


def load_manifest(path: str | os.PathLike[str], project: str | os.PathLike[str] | None = None) -> Manifest | None:
    """The manifest at ``path``, or ``None`` when there is none to use.

    ``None`` (with a log message) also for a manifest from an older Nuvom or
    one that cannot be read: it is rebuilt by the next refresh.  A manifest
    from a newer Nuvom raises :class:`ManifestVersionError`.  With
    ``project``, a manifest outside that directory, not owned by this user
    or writable by others raises :class:`~nuvom_support.files.UntrustedFileError`.
    """
    p = Path(path)
    if project is not None and p.exists():
        check_trusted_file(p, project, "task manifest")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read the task manifest %s (%s); it will be rebuilt", p, exc)
        return None
    try:
        # Fast path: a current manifest validates straight from bytes.
        manifest = Manifest.model_validate_json(raw)
    except ValidationError:
        pass
    else:
        if manifest.version == MANIFEST_VERSION:
            return manifest
    try:
        data = json.loads(raw)
    except ValueError as exc:
        logger.warning("the task manifest %s is not valid JSON (%s); it will be rebuilt", p, exc)
        return None
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > MANIFEST_VERSION:
        raise ManifestVersionError(
            f"the task manifest {p} has format version {version}, written by a newer Nuvom "
            f"(this one reads version {MANIFEST_VERSION}); upgrade Nuvom, or delete the file "
            "and run 'nuvom discover tasks' to rebuild it"
        )
    if version != MANIFEST_VERSION or isinstance(version, bool):
        logger.info(
            "the task manifest %s has format version %r, older than %d; it will be rebuilt",
            p, version, MANIFEST_VERSION,
        )
        return None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        logger.warning("the task manifest %s is damaged (%s); it will be rebuilt", p, exc.errors()[0]["msg"])
        return None


def save_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> None:
    """Write ``manifest`` to ``path`` atomically (see :func:`~nuvom_support.files.atomic_write`)."""
    atomic_write(path, manifest.model_dump_json().encode("utf-8"))


def build_manifest(
    tasks: Sequence[TaskInfo],
    root: str | os.PathLike[str],
    *,
    files: dict[str, dict[str, Any]] | None = None,
    problems: Sequence[dict[str, Any]] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    project: str | os.PathLike[str] | None = None,
) -> Manifest:
    """A manifest from a discoverer's tasks (the first of each name is kept);
    ``project`` (the project directory) records ``root`` relative to it."""
    entries: dict[str, ManifestTask] = {}
    for info in tasks:
        path = (info.path or "").replace("\\", "/")
        entries.setdefault(info.name, ManifestTask(
            name=info.name, module=info.module, qualname=info.qualname, path=path,
            line=info.line, is_async=info.is_async, options=dict(info.options),
            import_root=import_root_of(path, info.module),
        ))
    manifest = Manifest(
        root=Path(root).resolve().as_posix(),
        scan_root=_relative_root(root, project) if project is not None else None,
        include=list(include),
        exclude=list(exclude),
        tasks=sorted(entries.values(), key=lambda t: t.name),
        problems=list(problems),
    )
    # The cache is the discoverer's own data, handed back to it unchanged:
    # assigned without validation, which for 10,000 files costs as much as the rest of a warm refresh.
    manifest.files = dict(files or {})
    return manifest


def _relative_root(root: str | os.PathLike[str], project: str | os.PathLike[str]) -> str:
    try:
        rel = os.path.relpath(Path(root).resolve(), Path(project).resolve())
    except ValueError:  # Windows: another drive
        return Path(root).resolve().as_posix()
    return "" if rel == "." else Path(rel).as_posix()


def scan_root_of(manifest: Manifest, project: str | os.PathLike[str]) -> Path:
    """The directory the manifest's paths are relative to, found from the
    project directory (where the command runs), never from the absolute
    ``root`` recorded in the file."""
    base = Path(project).resolve()
    if manifest.scan_root is None:
        return base
    return (base / manifest.scan_root).resolve()


def diff_manifests(old: Manifest | None, new: Manifest) -> tuple[list[ManifestTask], list[ManifestTask], list[ModifiedTask]]:
    """(added, removed, modified) task lists, each sorted by name."""
    before = old.task_map() if old is not None else {}
    after = new.task_map()
    added = [after[n] for n in sorted(after.keys() - before.keys())]
    removed = [before[n] for n in sorted(before.keys() - after.keys())]
    modified = []
    for name in sorted(after.keys() & before.keys()):
        changed = before[name].differences(after[name])
        if changed:
            modified.append(ModifiedTask(before[name], after[name], changed))
    return added, removed, modified


def refresh_manifest(
    discoverer: Discoverer,
    root: str | os.PathLike[str] | None,
    path: str | os.PathLike[str],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    project: str | os.PathLike[str] | None = None,
) -> ManifestDiff:
    """Re-scan ``root`` using the manifest at ``path`` as cache; save if anything changed.

    ``root``, ``include`` and ``exclude`` default (``None``) to what the
    existing manifest recorded, so a worker refreshes exactly what the user
    last ran ``nuvom discover tasks`` on; without a manifest the root is the
    project root and nothing is filtered.  ``project`` is the directory paths
    are resolved against (default: ``root`` when given, else the settings'
    project root): the recorded root is relative to it, so a copied project
    scans the copy.  A manifest that cannot be trusted (outside the project,
    another owner, writable by others) is ignored with a warning and rebuilt.
    The file is written only when its content (tasks, problems, cache, root, filters) changed.  Raises
    :class:`ManifestVersionError` for a manifest from a newer Nuvom and
    :class:`~nuvom_kernel.errors.ConfigError` if ``root`` is not a directory.
    """
    from nuvom_kernel.settings import project_root

    manifest_path = Path(path)
    if project is None:
        project = Path(root) if root is not None else project_root()
    project = Path(project)
    try:
        old = load_manifest(manifest_path, project)
    except UntrustedFileError as exc:
        logger.warning("%s; ignoring it and scanning the project again", exc)
        old = None
    if root is None:
        scanned = scan_root_of(old, project) if old is not None else project
        root = scanned if scanned.is_dir() else project
    include = list(include) if include is not None else (list(old.include) if old else [])
    exclude = list(exclude) if exclude is not None else (list(old.exclude) if old else [])
    same_root = old is not None and Path(old.root) == Path(root).resolve()
    report = discoverer.discover(
        str(root), include=include, exclude=exclude, cache=old.files if same_root and old else None
    )
    new = build_manifest(
        report.tasks, root, files=report.files, problems=report.problems, include=include, exclude=exclude,
        project=project,
    )
    added, removed, modified = diff_manifests(old, new)
    unchanged = old is not None and _same_content(old, new)
    if old is not None and unchanged:
        new = old
    else:
        save_manifest(new, manifest_path)
    return ManifestDiff(
        manifest=new, path=manifest_path, added=added, removed=removed, modified=modified,
        problems=list(report.problems), files_scanned=report.files_scanned,
        files_parsed=report.files_parsed, written=not unchanged, created=old is None,
    )


def _same_content(a: Manifest, b: Manifest) -> bool:
    """Equal apart from ``generated_at`` (compared field by field: cheap on big caches)."""
    return (
        a.root == b.root and a.scan_root == b.scan_root and a.include == b.include and a.exclude == b.exclude
        and a.tasks == b.tasks and a.problems == b.problems and a.files == b.files
    )


def manifest_modules(manifest: Manifest) -> dict[str, str]:
    """``{task name: module}`` for every task in the manifest."""
    return {t.name: t.module for t in manifest.tasks}


def manifest_import_paths(manifest: Manifest, root: str | os.PathLike[str]) -> list[Path]:
    """The directories to put on ``sys.path`` (root first) so every task module
    imports; relative to ``root`` (the scanned root, :func:`scan_root_of`)."""
    base = Path(root)
    seen: dict[str, None] = {"": None}
    for task in manifest.tasks:
        seen.setdefault(task.import_root, None)
    return [base / r if r else base for r in seen]
