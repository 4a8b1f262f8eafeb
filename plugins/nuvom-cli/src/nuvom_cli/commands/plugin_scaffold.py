"""``nuvom plugin scaffold``: render the template shipped in this package
(``nuvom_cli/plugin_template/``) with cookiecutter, the ``scaffold`` extra."""

from __future__ import annotations

import re
from pathlib import Path

from nuvom_kernel.errors import NuvomError

KINDS = ("queue-backend", "result-backend", "executor", "discoverer", "commands", "lifecycle")
#: Nuvom 0.11's ``--capability`` spellings.
KIND_ALIASES = {"queue_backend": "queue-backend", "result_backend": "result-backend"}
#: The cookiecutter template, package data of nuvom-cli.
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "plugin_template"
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class ScaffoldError(NuvomError):
    """Bad name or kind, an existing project, or no template."""


def normalize_kind(kind: str | None) -> str:
    if not kind:
        raise ScaffoldError(f"choose what the plugin provides with --kind: {', '.join(KINDS)}")
    value = KIND_ALIASES.get(kind.strip().lower(), kind.strip().lower().replace("_", "-"))
    if value not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return value


def normalize_name(name: str) -> str:
    """``Redis``, ``nuvom-redis`` and ``nuvom_redis`` all mean ``redis``."""
    value = name.strip().lower().replace("_", "-")
    value = value.removeprefix("nuvom-")
    if not _NAME.match(value):
        raise ScaffoldError(
            f"plugin name {name!r} must be lowercase letters, digits and single hyphens, "
            "starting with a letter (e.g. redis, s3-results)"
        )
    return value


def find_template(explicit: str | None = None) -> str:
    """``--template`` (a path or git URL), else the template in this package."""
    if explicit:
        return explicit
    if not (TEMPLATE_DIR / "cookiecutter.json").is_file():
        raise ScaffoldError(
            f"the plugin template is missing from this installation ({TEMPLATE_DIR}); "
            "reinstall nuvom-cli, or pass --template with a path to a copy of it"
        )
    return str(TEMPLATE_DIR)


def render(name: str, kind: str | None, out: Path, *, force: bool = False, author: str = "Your Name",
           template: str | None = None) -> Path:
    """Render the template; returns the project directory (``<out>/nuvom-<name>``)."""
    short = normalize_name(name)
    chosen = normalize_kind(kind)
    source = find_template(template)
    try:
        from cookiecutter.exceptions import CookiecutterException, OutputDirExistsException
        from cookiecutter.main import cookiecutter
    except ImportError as exc:
        raise ScaffoldError(
            "nuvom plugin scaffold renders its template with cookiecutter, which is not installed: "
            "pip install \"nuvom-cli[scaffold]\" (or pip install \"nuvom[scaffold]\")"
        ) from exc
    out = out.resolve()
    project = out / f"nuvom-{short}"
    if project.exists() and not force:
        raise ScaffoldError(f"{project} already exists; pass --force to overwrite it or --out to choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    try:
        created = cookiecutter(
            source,
            no_input=True,
            output_dir=str(out),
            overwrite_if_exists=force,
            extra_context={"name": short, "kind": chosen, "author": author},
        )
    except OutputDirExistsException as exc:
        raise ScaffoldError(f"{project} already exists; pass --force to overwrite it") from exc
    except CookiecutterException as exc:
        raise ScaffoldError(f"rendering {source} failed: {exc}") from exc
    return Path(created)
