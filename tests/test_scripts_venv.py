"""scripts/_venv.py: pip runs when what it installs changed, and only then."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from support import ROOT


def load_venv_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nuvom_scripts_venv", ROOT / "scripts" / "_venv.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pip_is_skipped_until_a_requirements_or_pyproject_file_changes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    for name in ("requirements-dev.txt", "pyproject.toml"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, checkout / name)
    (checkout / "plugins" / "nuvom-cli").mkdir(parents=True)
    shutil.copy(ROOT / "plugins" / "nuvom-cli" / "pyproject.toml", checkout / "plugins" / "nuvom-cli" / "pyproject.toml")
    mod = load_venv_module()
    monkeypatch.setattr(mod, "ROOT", checkout)
    monkeypatch.setattr(mod, "VENV", tmp_path / "venv")
    python = mod.venv_python()
    python.parent.mkdir(parents=True)
    python.touch()  # an existing venv
    commands: list[list[str]] = []
    monkeypatch.setattr(mod, "run", lambda cmd, **kw: commands.append([str(c) for c in cmd]))

    mod.ensure_venv()
    assert len(commands) == 2 and commands[1][-2:] == ["-r", str(checkout / "requirements-dev.txt")]
    mod.ensure_venv()
    assert len(commands) == 2  # nothing changed: no pip
    plugin = checkout / "plugins" / "nuvom-cli" / "pyproject.toml"
    plugin.write_text(plugin.read_text(encoding="utf-8") + "\n# a new entry point\n", encoding="utf-8")
    mod.ensure_venv()
    assert len(commands) == 4  # a pyproject changed: pip again
    mod.ensure_venv()
    assert len(commands) == 4
