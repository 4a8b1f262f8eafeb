"""Where plugins come from: ``.nuvom_plugins.toml``, the ``NUVOM_LOAD_PLUGINS``
/ ``NUVOM_DISABLE_PLUGINS`` lists, and the record ``nuvom plugin status``
shows for each plugin."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nuvom_kernel.errors import PluginError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PLUGINS_FILE = ".nuvom_plugins.toml"


@dataclass
class PluginRecord:
    """What ``nuvom plugin status`` shows for one plugin."""

    name: str
    origin: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    loaded: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Every field but the traceback (``plugin status --json``)."""
        return {k: v for k, v in asdict(self).items() if k != "traceback"}


@dataclass
class PluginsFile:
    """``.nuvom_plugins.toml``: explicit modules, disabled names, per-plugin settings."""

    path: Path | None = None
    modules: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> PluginsFile:
        path = root / PLUGINS_FILE
        if not path.is_file():
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PluginError(f"{path}: cannot parse TOML ({exc}); fix the file") from exc
        table = data.get("plugins", {})
        if not isinstance(table, dict):
            raise PluginError(f"{path}: [plugins] must be a table")
        out = cls(path=path)
        for key, value in table.items():
            if key == "settings":
                if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                    raise PluginError(f"{path}: [plugins.settings.<name>] entries must be tables")
                out.settings = {k: dict(v) for k, v in value.items()}
            elif key == "disabled":
                out.disabled = _as_list(value, path, key)
            else:
                # "modules", and Nuvom 0.11's capability keys (queue_backend = [...])
                out.modules.extend(_as_list(value, path, key))
        return out


def _as_list(value: Any, path: Path, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PluginError(f"{path}: plugins.{key} must be a string or a list of strings")


def _env_list(name: str, environ: dict[str, str]) -> list[str] | None:
    raw = environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _why_disabled(name: str, in_file: list[str], allowed: set[str] | None) -> str:
    if _norm(name) in {_norm(n) for n in in_file}:
        return f"disabled in {PLUGINS_FILE}"
    if allowed is not None and _norm(name) not in allowed:
        return "not in NUVOM_LOAD_PLUGINS"
    return "disabled by NUVOM_DISABLE_PLUGINS"
