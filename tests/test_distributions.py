"""The distributions as users install them: wheels from scripts/build_wheels.py,
installed with pip into a fresh virtual environment with no checkout on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from support import ROOT

TASKS = """\
from nuvom import task

@task(name="dist.add")
def add(a, b):
    return a + b
"""


class Env:
    """A fresh venv and a project directory outside the checkout."""

    def __init__(self, tmp: Path, wheels: Path) -> None:
        self.dir = tmp / "venv"
        self.wheels = wheels
        self.project = tmp / "project"
        self.project.mkdir()
        venv.EnvBuilder(with_pip=True, clear=True).create(self.dir)
        self.bin = self.dir / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / ("python.exe" if os.name == "nt" else "python")
        drop = ("NUVOM_", "PYTHONPATH", "VIRTUAL_ENV", "PIP_")
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        self.environ.update(PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
                            PIP_CONFIG_FILE=os.devnull,  # only our directory: no index, no other find-links
                            PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1")

    def run(self, *cmd: str | Path, ok: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=self.project,
                             env=self.environ, timeout=timeout)
        if ok:
            assert out.returncode == 0, f"{' '.join(map(str, cmd))} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
        return out

    def pip_install(self, *requirements: str | Path) -> None:
        self.run(self.python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", self.wheels,
                 *requirements)

    def nuvom(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin / "nuvom", *args, ok=ok)

    def plugins(self) -> dict[str, dict]:
        return {r["name"]: r for r in json.loads(self.nuvom("plugin", "status", "--json").stdout)}


@pytest.mark.slow
def test_built_wheels_install_and_work_in_a_fresh_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_wheels.py"), str(wheels), "--with-deps"],
                   check=True, capture_output=True, timeout=900)
    env = Env(tmp_path, wheels)

    # the kernel alone: the @task API, no command, no plugin
    env.pip_install("nuvom-kernel")
    where = env.run(env.python, "-c", "import nuvom, nuvom_kernel; print(nuvom_kernel.__file__)").stdout
    assert str(env.dir) in where and str(ROOT) not in where
    assert not (env.bin / "nuvom").exists()
    alone = env.run(env.python, "-c", "import nuvom; nuvom.get_app().queue", ok=False)
    assert "pip install nuvom-backend-sqlite (pip install nuvom includes it)" in alone.stderr

    # the kernel and the CLI alone: the command says what is missing, and where it comes from
    env.pip_install("nuvom-cli")
    missing = env.nuvom("discover", "tasks", ok=False)
    assert missing.returncode == 2
    assert "comes from the plugin nuvom-discovery-ast, which is not installed" in missing.stderr
    roles = env.nuvom("plugin", "status").stderr
    for role in ("queue backend", "result backend", "executor", "task discoverer"):
        assert f"warning: no {role} is installed or enabled" in " ".join(roles.split())

    # `pip install nuvom`: 1.0.0 from our directory (a resolver prefers it to PyPI's 0.11.2)
    env.pip_install("nuvom")
    assert env.nuvom("version").stdout.startswith("nuvom 1.0.0")
    plugins = env.plugins()
    for name in ("nuvom-backend-sqlite", "nuvom-backend-file", "nuvom-backend-memory",
                 "nuvom-executor-thread", "nuvom-discovery-ast", "nuvom-scheduler", "nuvom-cli", "nuvom-serializer-msgpack"):
        assert plugins[name]["loaded"] and plugins[name]["error"] is None, plugins.get(name)
    assert "nuvom-executor-process" not in plugins

    # a job end to end on the default backend (SQLite), producer and worker in separate processes
    (env.project / "tasks.py").write_text(TASKS, encoding="utf-8")
    job_id = env.run(env.python, "-c", "from tasks import add; print(add.delay(20, 22).id)").stdout.strip()
    worker = env.nuvom("runworker", "--tasks", "tasks", "--burst")
    assert "1 succeeded" in worker.stderr
    status = json.loads(env.nuvom("status", job_id, "--json").stdout)
    assert status["state"] == "succeeded" and status["result"] == 42

    # adding a plugin: its distribution alone
    env.pip_install("nuvom-executor-process")
    assert env.plugins()["nuvom-executor-process"]["provides"] == {"executors": ["process"]}

    # scaffold needs the `scaffold` extra, and says so
    missing = env.nuvom("plugin", "scaffold", "hello", "--kind", "executor", ok=False)
    assert missing.returncode == 2 and 'pip install "nuvom-cli[scaffold]"' in " ".join(missing.stderr.split())
    env.pip_install("nuvom[scaffold]")
    env.nuvom("plugin", "scaffold", "hello", "--kind", "executor")
    env.pip_install(f"{env.project / 'nuvom-hello'}[test]")  # as `scaffold` advises: the test extra brings pytest
    report = json.loads(env.nuvom("plugin", "test", "nuvom-hello", "--json").stdout)
    assert report["ok"], report
