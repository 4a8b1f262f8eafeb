"""S5 (owner-only ``.nuvom`` for every command) and the trust of the task
manifest: only a manifest inside the project, owned by this user and not
writable by others decides what a worker imports, and paths come from where
the command runs, never from the ``root`` recorded in the manifest."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reliability.harness import BACKENDS, HERE, Project

POSIX = os.name == "posix"

TASK_SOURCE = '''
from pathlib import Path

from nuvom import task


@task(name="proj.where")
def where() -> str:
    Path(__file__).with_name("ran-" + Path(__file__).parent.name).write_text("x")
    return str(Path(__file__).resolve())
'''


def _write_tasks(root: Path) -> None:
    (root / "projtasks.py").write_text(TASK_SOURCE, encoding="utf-8")


def _nuvom(project: Project, *args: str, umask0: bool = True, cwd: Path | None = None,
           **env: str) -> subprocess.CompletedProcess[str]:
    runner = [str(HERE / "rel_umask.py")] if umask0 else ["-m", "nuvom_cli"]
    return subprocess.run([sys.executable, *runner, *args], capture_output=True, text=True,
                          cwd=cwd or project.root, env=project.env(**env), timeout=180)


def _not_private(base: Path) -> list[str]:
    out = []
    for path in [base, *base.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            out.append(f"{path.relative_to(base.parent)} {mode:o}")
    return out


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.parametrize("backend", BACKENDS)
def test_s5_every_command_creates_owner_only_files_whatever_the_umask(backend: str, tmp_path: Path) -> None:
    """discover, enqueue, a worker (with its manifest refresh and doorbell), stop
    and stats, each with umask 0, starting without a ``.nuvom`` directory."""
    project = Project(tmp_path / "proj", backend)
    _write_tasks(project.root)
    nuvom_dir = project.root / ".nuvom"
    # each of these may be the first command to create .nuvom
    for first in (("discover", "tasks"), ("stop", "--all"), ("enqueue", "proj.where"), ("stats",)):
        out = _nuvom(project, *first)
        assert out.returncode == 0, (first, out.stderr[-2000:])
        assert not _not_private(nuvom_dir), (first, _not_private(nuvom_dir))
        shutil.rmtree(nuvom_dir)
    for args in (("discover", "tasks"), ("enqueue", "proj.where"), ("runworker", "--burst", "--concurrency", "1"),
                 ("stop", "--id", "w-1"), ("stop", "--all"), ("stats",)):
        out = _nuvom(project, *args)
        assert out.returncode == 0, (args, out.stderr[-2000:])
        assert not _not_private(nuvom_dir), (args, _not_private(nuvom_dir))
    assert (project.root / "ran-proj").exists(), "the job did not run"
    assert (nuvom_dir / "manifest.json").exists() and (nuvom_dir / "workers" / "stop-w-1").exists()
    print(f"[reliability] property=S5-all-commands backend={backend} entries={len(list(nuvom_dir.rglob('*')))}")


def _copy_project(old: Path, new: Path) -> None:
    shutil.copytree(old, new, symlinks=True)


@pytest.mark.parametrize("discovery", ["with-discoverer", "manifest-only"])
def test_a_copied_project_runs_its_own_code_not_the_manifests_root(discovery: str, tmp_path: Path) -> None:
    """A deploy copy: the manifest in the copy records the old absolute root,
    which still exists.  The worker must import the copy's modules."""
    old = Project(tmp_path / "old", "sqlite")
    _write_tasks(old.root)
    assert _nuvom(old, "discover", "tasks", umask0=False).returncode == 0
    recorded = json.loads((old.root / ".nuvom" / "manifest.json").read_text(encoding="utf-8"))["root"]
    assert recorded == old.root.resolve().as_posix()
    new = Project(tmp_path / "new", "sqlite")
    shutil.rmtree(new.root)
    _copy_project(old.root, new.root)
    extra = {"NUVOM_DISABLE_PLUGINS": "nuvom-discovery-ast"} if discovery == "manifest-only" else {}
    assert _nuvom(new, "enqueue", "proj.where", umask0=False, **extra).returncode == 0
    out = _nuvom(new, "runworker", "--burst", "--concurrency", "1", umask0=False, **extra)
    assert out.returncode == 0 and "1 succeeded" in out.stderr, out.stderr[-2000:]
    assert (new.root / "ran-new").exists(), "the copy's task did not run"
    assert not (old.root / "ran-old").exists(), "the worker imported the OLD project's module"


def _hostile_manifest(project: Project, evil: Path) -> Path:
    """A manifest naming a module in ``evil`` (another user's directory)."""
    evil.mkdir()
    (evil / "evilmod.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('PWNED').write_text('x')\n"
        "from nuvom import task\n@task(name='proj.where')\ndef where():\n    return 'evil'\n", encoding="utf-8")
    manifest = {
        "version": 2, "root": evil.as_posix(), "include": [], "exclude": [],
        "tasks": [{"name": "proj.where", "module": "evilmod", "qualname": "where", "path": "evilmod.py",
                   "line": 4, "is_async": False, "options": {}, "import_root": ""}],
        "files": {}, "problems": [],
    }
    path = project.root / ".nuvom" / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.parametrize("discovery", ["with-discoverer", "manifest-only"])
def test_a_group_writable_manifest_is_not_trusted(discovery: str, tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", "sqlite")
    _write_tasks(project.root)
    evil = tmp_path / "evil"
    path = _hostile_manifest(project, evil)
    os.chmod(path, 0o664)
    extra = {"NUVOM_DISABLE_PLUGINS": "nuvom-discovery-ast"} if discovery == "manifest-only" else {}
    out = _nuvom(project, "runworker", "--burst", "--concurrency", "1", umask0=False, **extra)
    assert not (evil / "PWNED").exists(), "a group-writable manifest made the worker import another user's code"
    if discovery == "manifest-only":
        # nothing to rebuild it with: refuse, naming the file and the fix
        assert out.returncode == 2, out.stderr[-2000:]
        text = " ".join(out.stderr.split())
        assert str(path.resolve()) in text.replace(" ", "") or "manifest.json" in text, text
        assert "chmod 600" in text and "Traceback" not in out.stderr, text
    else:
        assert out.returncode == 0, out.stderr[-2000:]
        assert "ignoring it" in out.stderr.replace("\n", " ")
        # rebuilt from the project, owner-only
        rebuilt = json.loads(path.read_text(encoding="utf-8"))
        assert [t["module"] for t in rebuilt["tasks"]] == ["projtasks"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(not POSIX or os.geteuid() != 0, reason="needs root to create a file owned by another user")
def test_a_manifest_owned_by_another_user_is_not_trusted(tmp_path: Path) -> None:
    """The issue's escalation: another user's manifest, a worker run as root."""
    project = Project(tmp_path / "proj", "sqlite")
    evil = tmp_path / "evil"
    path = _hostile_manifest(project, evil)
    os.chmod(path, 0o600)
    os.chown(path, 65534, 65534)
    out = _nuvom(project, "runworker", "--burst", umask0=False, NUVOM_DISABLE_PLUGINS="nuvom-discovery-ast")
    assert not (evil / "PWNED").exists()
    assert out.returncode == 2 and "owned by uid 65534" in " ".join(out.stderr.split()), out.stderr[-2000:]


def test_a_manifest_outside_the_project_is_not_trusted(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", "sqlite")
    evil = tmp_path / "evil"
    inside = _hostile_manifest(project, evil)
    outside = tmp_path / "elsewhere.json"
    shutil.move(str(inside), outside)
    out = _nuvom(project, "runworker", "--burst", umask0=False, NUVOM_DISABLE_PLUGINS="nuvom-discovery-ast",
                 NUVOM_MANIFEST_PATH=str(outside))
    assert not (evil / "PWNED").exists()
    assert out.returncode == 2 and "outside the project" in " ".join(out.stderr.split()), out.stderr[-2000:]
