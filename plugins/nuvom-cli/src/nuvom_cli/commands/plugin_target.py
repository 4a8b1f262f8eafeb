"""What ``nuvom plugin test`` tests: finding the target and loading it alone.

A target is an installed distribution or entry-point name
(``nuvom-backend-sqlite``), a dotted module (``nuvom_hello.plugin``, optionally
``module:attr``) or a ``.py`` file (``./my_plugin.py``).  It is loaded into a
fresh plugin manager with no other plugin, no ``.nuvom_plugins.toml`` and no
``NUVOM_*`` variables, so what passes here does not depend on what else is
installed.  The contract subprocess loads it again the same way from the
:class:`Target`'s JSON form.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from nuvom_kernel.errors import PluginError
from nuvom_kernel.manager import ENTRY_POINT_GROUP, NuvomPluginManager, PluginRecord
from nuvom_support import legacy

TargetKind = Literal["entry point", "module", "file"]
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class TargetNotFoundError(PluginError):
    """The target is neither an installed plugin, an importable module nor a file."""


@dataclass
class Target:
    raw: str
    kind: TargetKind
    #: absolute path (``file``), dotted module (``module``), or the distribution name
    spec: str
    #: the entry-point names to load (``entry point`` only)
    entry_points: list[str] = field(default_factory=list)
    root: str = "."

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(**data)


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _looks_like_path(raw: str) -> bool:
    return raw.endswith(".py") or ".py:" in raw or "/" in raw or "\\" in raw or bool(_DRIVE.match(raw))


def _split_attr(raw: str) -> tuple[str, str]:
    """``path.py:Attr`` -> (``path.py``, ``:Attr``); a drive letter is not an attribute."""
    head, sep, tail = raw.rpartition(":")
    if sep and tail.replace(".", "").replace("_", "").isalnum() and not _DRIVE.match(raw[: len(head) + 2]):
        return head, f":{tail}"
    return raw, ""


def plugin_entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def resolve_target(raw: str, cwd: Path, root: Path) -> Target:
    """Decide what ``raw`` names; raise :class:`TargetNotFoundError` if nothing."""
    raw = raw.strip()
    if not raw:
        raise TargetNotFoundError("give a plugin to test: a distribution, a dotted module or a .py file")
    if _looks_like_path(raw):
        path_part, attr = _split_attr(raw)
        path = Path(path_part)
        path = (path if path.is_absolute() else cwd / path).resolve()
        if not path.is_file():
            raise TargetNotFoundError(f"plugin file {path} does not exist; check the path (relative paths start at {cwd})")
        return Target(raw=raw, kind="file", spec=f"{path}{attr}", root=str(root))
    wanted = _norm(raw)
    by_name = [ep for ep in plugin_entry_points() if _norm(ep.name) == wanted]
    by_dist = [ep for ep in plugin_entry_points() if _norm(getattr(getattr(ep, "dist", None), "name", "") or "") == wanted]
    found = by_name or by_dist
    if found:
        names = sorted({ep.name for ep in found})
        return Target(raw=raw, kind="entry point", spec=raw, entry_points=names, root=str(root))
    if _module_exists(raw.partition(":")[0], root):
        return Target(raw=raw, kind="module", spec=raw, root=str(root))
    try:
        dist = metadata.distribution(raw)
    except metadata.PackageNotFoundError:
        installed = ", ".join(ep.name for ep in plugin_entry_points()) or "none"
        raise TargetNotFoundError(
            f"{raw!r} is not an installed plugin (distribution or entry-point name), an importable module "
            f"or a .py file; installed plugins: {installed}. Install it (pip install -e .) or give a file path"
        ) from None
    raise TargetNotFoundError(
        f"distribution {dist.metadata['Name']} is installed but declares no entry point in group "
        f"{ENTRY_POINT_GROUP!r}; add [project.entry-points.{ENTRY_POINT_GROUP}] to its pyproject.toml and reinstall"
    )


def _module_exists(modname: str, root: Path) -> bool:
    if not modname or not all(part.isidentifier() for part in modname.split(".")):
        return False
    added = str(root) not in sys.path
    if added:  # as the plugin manager does for explicitly listed modules
        sys.path.insert(0, str(root))
    try:
        return importlib.util.find_spec(modname) is not None
    except ModuleNotFoundError:
        return False
    except Exception:  # the parent package exists but fails to import: loading will report why
        return True
    finally:
        if added and str(root) in sys.path:
            sys.path.remove(str(root))


def isolated_environ() -> dict[str, str]:
    """The process environment without ``NUVOM_*``: no allow/block lists, no strict mode."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("NUVOM_")}


def load_target(target: Target) -> tuple[NuvomPluginManager, list[PluginRecord]]:
    """A fresh plugin manager holding the kernel's built-ins and the target only."""
    environ = isolated_environ()
    root = Path(target.root)
    if target.kind == "entry point":
        environ["NUVOM_LOAD_PLUGINS"] = ",".join(target.entry_points)
        pm = NuvomPluginManager(root, environ=environ).load(plugins_file=False)
        records = [pm.records.get(name) or PluginRecord(name=name, origin="entry point", error="not loaded")
                   for name in target.entry_points]
        return pm, records
    pm = NuvomPluginManager(root, environ=environ).load(entry_points=False, plugins_file=False)
    pm.load_spec(legacy.__name__, origin="entry point", name=legacy.PLUGIN_NAME)  # adapts a 0.11 plugin
    return pm, [pm.load_spec(target.spec, origin=target.kind)]
