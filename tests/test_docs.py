"""The docs cannot drift: every hook, setting and command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from nuvom_cli.app import build_app
from typer.main import get_command

from nuvom_kernel import hookspecs
from nuvom_kernel.settings import NuvomSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_hook_is_documented() -> None:
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    hooks = [n for n in dir(hookspecs) if n.startswith("nuvom_")]
    missing = [h for h in hooks if not re.search(rf"^### `{h}\(", text, re.M)]
    assert not missing, f"hooks missing from docs/hooks.md: {missing}"


def test_every_setting_is_documented_with_its_default() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name, field in NuvomSettings.model_fields.items():
        env = f"NUVOM_{name.upper()}"
        row = next((line for line in text.splitlines() if line.startswith(f"| `{env}` |")), None)
        assert row is not None, f"{env} is not in docs/configuration.md"
        if field.default_factory is None:
            default = "none" if field.default is None else str(field.default)
            assert f"`{default}`" in row, f"{env}: default {default} not in docs row {row!r}"


def _command_paths(group: object, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        path = f"{prefix}{name}"
        if getattr(cmd, "commands", None):
            out.extend(_command_paths(cmd, path + " "))
        else:
            out.append(path)
    return out


def test_every_command_is_documented() -> None:
    app: typer.Typer = build_app()
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [p for p in _command_paths(get_command(app)) if f"## `nuvom {p}" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8").splitlines()
    head = "\n".join(readme[:6])
    assert "python scripts/quickstart.py" in head and "python scripts/test.py" in head
