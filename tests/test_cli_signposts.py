"""Signposts through the real `nuvom` process: what is wrong, where it was set,
and what to do, in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import nuvom_cmd, subprocess_env


def run(args: list[str], root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nuvom_cmd() + args, capture_output=True, text=True, cwd=root,
                          env=subprocess_env(root, **env), timeout=120)


def test_a_tasks_module_that_does_not_exist_exits_2_with_one_line(tmp_path: Path) -> None:
    for spec, says in (("nosuchmodule", "no module named 'nosuchmodule'"), ("missing/tasks.py", "does not exist")):
        out = run(["runworker", "--tasks", spec, "--burst"], tmp_path)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: --tasks {spec}: ") and says in lines[0], lines
        assert not (tmp_path / ".nuvom").exists()  # no worker started, no store opened


def test_plugin_status_lists_disabled_plugins_and_warns_about_missing_roles(tmp_path: Path) -> None:
    env = {"NUVOM_DISABLE_PLUGINS": "nuvom-executor-thread,nuvom-executor-process"}
    out = run(["plugin", "status", "--json"], tmp_path, **env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["nuvom-executor-thread"]["disabled"] == "disabled by NUVOM_DISABLE_PLUGINS"
    assert not rows["nuvom-executor-thread"]["loaded"] and rows["nuvom-backend-sqlite"]["disabled"] is None
    assert "warning: no executor is installed or enabled" in out.stderr
    assert "queue backend" not in out.stderr  # only the missing role
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\ndisabled = ["nuvom-discovery-ast"]\n', encoding="utf-8")
    table = run(["plugin", "status"], tmp_path, COLUMNS="400")  # wide enough that no cell wraps
    line = next(x for x in table.stdout.splitlines() if "nuvom-discovery-ast" in x)
    assert "disabled in .nuvom_plugins.toml" in line
    assert "no task discoverer is installed or enabled" in table.stderr


def test_component_errors_name_where_the_name_came_from(tmp_path: Path) -> None:
    default = run(["history"], tmp_path, NUVOM_DISABLE_PLUGINS="nuvom-backend-sqlite")
    assert default.returncode != 0
    assert "queue backend 'sqlite' (the default; set NUVOM_QUEUE_BACKEND to choose another)" in default.stderr
    assert "installed but disabled by NUVOM_DISABLE_PLUGINS" in default.stderr
    assert "not installed?" not in default.stderr
    env = run(["history"], tmp_path, NUVOM_QUEUE_BACKEND="sqlit")
    assert "(NUVOM_QUEUE_BACKEND in the environment)" in env.stderr and "did you mean 'sqlite'" in env.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.nuvom]\nexecutor = "proces"\n', encoding="utf-8")
    file = run(["runworker", "--burst"], tmp_path)
    assert file.returncode == 2
    assert "executor 'proces' (executor in pyproject.toml [tool.nuvom])" in file.stderr
    option = run(["runworker", "--burst", "--executor", "proces"], tmp_path)
    assert "(given as an option or argument)" in option.stderr
