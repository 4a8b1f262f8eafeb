"""Plugin-owned settings: a pydantic model per plugin, validated and layered by the kernel.

A plugin declares its options in ``nuvom_register_settings(register)``::

    register("sqlite", SqliteOptions, env={"path": "NUVOM_SQLITE_DB_PATH"})

and the kernel reads each option from, highest first:

1. the environment: ``NUVOM_<SECTION>__<KEY>`` (``NUVOM_SQLITE__PATH``) or a
   name the plugin declares (``NUVOM_SQLITE_DB_PATH``);
2. ``.env`` in the project root (never over a variable that is really set);
3. ``[tool.nuvom.<section>]`` in ``pyproject.toml`` (a declared name also
   works flat in ``[tool.nuvom]``, lower case without the prefix:
   ``sqlite_db_path``);
4. ``[plugins.settings.<section>]`` (or ``[plugins.settings.<plugin name>]``)
   in ``.nuvom_plugins.toml``;
5. the model's defaults.

Values in the two files may reference the environment, so that secrets stay
out of files: ``password = {"$env" = "PG_PASSWORD"}`` takes the whole value,
``url = "redis://:${REDIS_PASSWORD}@cache:6379/0"`` substitutes inside a
string (``$${`` is a literal ``${``).  ``nuvom config`` shows every value with
its source; fields typed ``pydantic.SecretStr`` are never printed.
"""

from __future__ import annotations

import difflib
import re
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nuvom_kernel.errors import ConfigError, PluginError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "NUVOM_"
_SECTION = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class SettingsDeclaration:
    """One plugin's options: ``section`` names them everywhere, ``env`` maps a
    field to extra environment names (e.g. Nuvom 0.11's)."""

    section: str
    model: type[BaseModel]
    plugin: str
    env: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def env_prefix(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper().replace('-', '_')}__"

    def env_names(self, name: str) -> list[str]:
        """Every environment name of field ``name``, the canonical one first."""
        return [self.env_prefix() + name.upper(), *self.env.get(name, ())]


@dataclass
class PluginSettings:
    """A plugin's validated options and where each value came from."""

    declaration: SettingsDeclaration
    values: BaseModel
    sources: dict[str, str]
    #: values that reference the environment, as written (never the secret they resolve to)
    templates: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """Every value as ``nuvom config`` may show it: secrets masked, references unexpanded."""
        data = self.values.model_dump(mode="json")  # SecretStr fields dump as "**********"
        for key, template in self.templates.items():
            if key in data:
                data[key] = template
        return data


def declaration(section: str, model: Any, plugin: str, env: Mapping[str, str | list[str] | tuple[str, ...]] | None) -> SettingsDeclaration:
    """Check what a plugin passed to ``register`` and build its declaration."""
    if not isinstance(section, str) or not _SECTION.match(section):
        raise PluginError(f"plugin {plugin!r} registered settings under {section!r}: use a short lower-case "
                          "name like 'sqlite' (letters, digits, '-' or '_')")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginError(f"plugin {plugin!r}: settings {section!r} must be a pydantic BaseModel class, got {model!r}")
    names: dict[str, tuple[str, ...]] = {}
    for key, value in (env or {}).items():
        if key not in model.model_fields:
            raise PluginError(f"plugin {plugin!r}: env names for unknown field {key!r} of {model.__name__}; "
                              f"fields: {', '.join(model.model_fields)}")
        listed = (value,) if isinstance(value, str) else tuple(value)
        bad = [n for n in listed if not n.startswith(ENV_PREFIX) or n != n.upper()]
        if bad:
            raise PluginError(f"plugin {plugin!r}: environment names must be upper case and start with "
                              f"{ENV_PREFIX}: {', '.join(bad)}")
        names[key] = listed
    return SettingsDeclaration(section, model, plugin, names)


def claimed_keys(declarations: list[SettingsDeclaration]) -> tuple[set[str], tuple[str, ...]]:
    """``NUVOM_*`` names (without the prefix, lower case) and ``<section>__`` prefixes
    that belong to plugins, so kernel settings do not call them unknown."""
    names = {n[len(ENV_PREFIX):].lower() for d in declarations for ns in d.env.values() for n in ns}
    prefixes = tuple(d.env_prefix()[len(ENV_PREFIX):].lower() for d in declarations)
    return names, prefixes


def _expand(value: Any, where: str, environ: Mapping[str, str]) -> Any:
    """Resolve ``{"$env": "NAME"}`` and ``${NAME}`` references in a value read from a file."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if not isinstance(name, str) or name not in environ:
                raise ConfigError(f"{where} = {{\"$env\" = {name!r}}}: the environment variable {name} is not set; "
                                  "set it, or put the value itself in the file")
            return environ[name]
        return {k: _expand(v, f"{where}.{k}", environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where, environ) for v in value]
    if isinstance(value, str) and "${" in value:
        def substitute(match: re.Match[str]) -> str:
            if match.group(1):
                return "${" + match.group(2) + "}"
            name = match.group(2)
            if name not in environ:
                raise ConfigError(f"{where}: the value references ${{{name}}}, but the environment variable "
                                  f"{name} is not set; set it, or write $${{ for a literal ${{")
            return environ[name]

        return _REFERENCE.sub(substitute, value)
    return value


def read_tool_nuvom(path: Path) -> dict[str, Any]:
    """The ``[tool.nuvom]`` table of a ``pyproject.toml`` (empty without one); one
    reader for the kernel's settings and every plugin's."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse TOML ({exc}); fix the file or remove [tool.nuvom]") from exc
    table = data.get("tool", {}).get("nuvom", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.nuvom] must be a table")
    return table


def resolve(declarations: list[SettingsDeclaration], root: Path, environ: Mapping[str, str],
            dotenv: Mapping[str, str], plugins_file: Mapping[str, Mapping[str, Any]],
            notes: list[str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, PluginSettings]:
    """Validate every declared plugin's options from every source (see the module docstring).

    ``overrides`` (keyword arguments of ``Nuvom(...)``, highest of all) may name
    an option by a flat name it declares (``sqlite_db_path``) or as
    ``<section>__<key>`` (``sqlite__path``).

    An unknown ``NUVOM_<SECTION>__<KEY>`` variable is appended to ``notes``
    (a warning with a suggestion); an unknown key in a file is an error.
    """
    pyproject = read_tool_nuvom(root / "pyproject.toml")
    out: dict[str, PluginSettings] = {}
    for decl in declarations:
        out[decl.section] = _resolve_one(decl, pyproject, environ, dotenv, plugins_file, notes, overrides or {})
    return out


def _resolve_one(decl: SettingsDeclaration, pyproject: Mapping[str, Any], environ: Mapping[str, str],
                 dotenv: Mapping[str, str], plugins_file: Mapping[str, Mapping[str, Any]],
                 notes: list[str] | None, overrides: Mapping[str, Any] | None = None) -> PluginSettings:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    shown: dict[str, str] = {}
    templates: dict[str, Any] = {}

    def put(key: str, value: Any, source: str, name: str, raw: Any = None) -> None:
        values[key], sources[key], shown[key] = value, source, name
        templates.pop(key, None)
        if raw is not None and raw != value:
            templates[key] = _template(raw)

    for table_name in (decl.plugin, decl.section):  # lowest first: the section's table wins
        table = plugins_file.get(table_name)
        for key, value in (table or {}).items():
            where = f".nuvom_plugins.toml [plugins.settings.{table_name}] {key}"
            put(key, _expand(value, where, environ), f".nuvom_plugins.toml [plugins.settings.{table_name}]", key, value)
    for key in decl.model.model_fields:
        for env_name in reversed(decl.env_names(key)[1:]):
            flat = env_name[len(ENV_PREFIX):].lower()
            if flat in pyproject and not isinstance(pyproject[flat], dict):
                where = f"pyproject.toml [tool.nuvom] {flat}"
                put(key, _expand(pyproject[flat], where, environ), f"pyproject.toml [tool.nuvom] {flat}", flat,
                    pyproject[flat])
    section_table = pyproject.get(decl.section)
    if isinstance(section_table, dict):
        for key, value in section_table.items():
            where = f"pyproject.toml [tool.nuvom.{decl.section}] {key}"
            put(key, _expand(value, where, environ), f"pyproject.toml [tool.nuvom.{decl.section}]", key, value)
    for origin, layer in ((".env", dotenv), ("environment", environ)):
        for key in decl.model.model_fields:
            for env_name in reversed(decl.env_names(key)):  # the canonical name wins
                if env_name in layer and (origin == "environment" or env_name not in environ):
                    put(key, layer[env_name], f"{origin} ({env_name})", env_name)
        prefix = decl.env_prefix()
        for env_name in layer:
            key = env_name[len(prefix):].lower()
            if env_name.upper().startswith(prefix) and key not in decl.model.model_fields and notes is not None:
                close = difflib.get_close_matches(key, list(decl.model.model_fields), n=1, cutoff=0.6)
                hint = f"; did you mean {prefix}{close[0].upper()}?" if close else ""
                notes.append(f"unknown setting {env_name} in {origin} ({decl.plugin} accepts "
                             f"{', '.join(prefix + k.upper() for k in decl.model.model_fields)}){hint}")
    for key in decl.model.model_fields:
        for name in [f"{decl.section}__{key}", *(n[len(ENV_PREFIX):].lower() for n in decl.env_names(key))]:
            if overrides and overrides.get(name) is not None:
                put(key, overrides[name], "argument", name)
                break
    try:
        model = decl.model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(explain(decl, exc, {**values, **templates}, sources, shown)) from None
    for key in decl.model.model_fields:
        sources.setdefault(key, "default")
    return PluginSettings(decl, model, sources, templates)


def _template(raw: Any) -> Any:
    """A file value with its environment references, shown instead of what they resolve to."""
    if isinstance(raw, dict) and set(raw) == {"$env"}:
        return "${" + str(raw["$env"]) + "}"
    return raw


def explain(decl: SettingsDeclaration, exc: ValidationError, values: dict[str, Any], sources: dict[str, str],
             shown: dict[str, str]) -> str:
    """The :class:`ConfigError` message for options that failed validation: each
    problem names the key, the value (secrets masked), where it came from and
    what is allowed."""
    problems = []
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else "?"
        name = shown.get(key, key)
        where = sources.get(key, "default")
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(decl.model.model_fields)
            problems.append(f"{decl.section} setting {name} (from {where}) is unknown; "
                            f"{decl.plugin} accepts: {allowed}")
            continue
        value = values.get(key)
        if key in decl.model.model_fields:
            annotation = decl.model.model_fields[key].annotation
            if getattr(annotation, "__name__", "") == "SecretStr":
                value = "**********"
        if err["type"] == "value_error":  # a validator of the plugin's says what is wrong
            problem = str(err["msg"]).removeprefix("Value error, ")
        else:
            problem = "expected " + (describe_allowed(decl.model, key) if key in decl.model.model_fields else err["msg"])
        problems.append(f"{decl.section} setting {name}={value!r} (from {where}) is invalid: {problem}")
    return "; ".join(problems)


def describe_allowed(model: type[BaseModel], field_name: str) -> str:
    """What a field accepts, in words: "one of NORMAL, FULL", "a number > 0 and <= 3600"."""
    info = model.model_fields[field_name]
    union = typing.get_origin(info.annotation) in (typing.Union, types.UnionType, typing.Literal)
    args = [a for a in getattr(info.annotation, "__args__", ()) if a is not type(None)] if union else []
    literal = [v for a in args for v in getattr(a, "__args__", ())] or list(getattr(info.annotation, "__args__", ()))
    if literal and all(isinstance(a, str) for a in literal):
        return "one of " + ", ".join(literal)
    kinds = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}
    ann = args[0] if args else info.annotation
    text = kinds.get(ann, getattr(ann, "__name__", str(ann))) if isinstance(ann, type) else str(ann)
    bounds = []
    for meta in info.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{sym} {getattr(meta, attr)}")
    if bounds:
        text += " " + " and ".join(bounds)
    if type(None) in getattr(info.annotation, "__args__", ()):
        text += " (or empty for none)"
    return text


