"""The task manifest: refresh and diff, versions, atomic save, worker helpers."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from nuvom_discovery_ast import AstDiscoverer

from nuvom_kernel.errors import ConfigError, NuvomError
from nuvom_kernel.settings import NuvomSettings
from nuvom_support import manifest as manifest_module
from nuvom_support.manifest import (
    MANIFEST_VERSION,
    Manifest,
    ManifestTask,
    ManifestVersionError,
    default_manifest_path,
    import_root_of,
    load_manifest,
    manifest_import_paths,
    manifest_modules,
    refresh_manifest,
    save_manifest,
)

TASK = "from nuvom import task\n@task{args}\ndef {name}(): ...\n"


def task_src(name: str, args: str = "") -> str:
    return TASK.format(name=name, args=args)


@pytest.fixture
def project(write_tree) -> Path:
    return write_tree({
        "app/__init__.py": "",
        "app/jobs.py": task_src("send", "(retries=2, tags=['mail'])") + task_src("resize"),
        "src/lib/more.py": task_src("report"),
    }, old=True)


def test_manifest_refresh_creates_then_reports_no_change(project: Path) -> None:
    path = project / ".nuvom" / "manifest.json"
    first = refresh_manifest(AstDiscoverer(), project, path)
    assert (first.created, first.written) == (True, True)
    assert [t.name for t in first.added] == ["report", "resize", "send"]
    assert first.removed == [] and first.modified == []
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == MANIFEST_VERSION
    assert data["root"] == project.resolve().as_posix()
    send = next(t for t in data["tasks"] if t["name"] == "send")
    assert send == {
        "name": "send", "module": "app.jobs", "qualname": "send", "path": "app/jobs.py", "line": 3,
        "is_async": False, "options": {"retries": 2, "tags": ["mail"]}, "import_root": "",
    }
    assert set(data["files"]) == {"app/__init__.py", "app/jobs.py", "src/lib/more.py"}
    before = path.read_bytes()

    second = refresh_manifest(AstDiscoverer(), project, path)
    assert (second.created, second.written, second.changed, second.files_parsed) == (False, False, False, 0)
    assert path.read_bytes() == before


def test_manifest_refresh_diff_added_removed_modified(project: Path) -> None:
    path = project / ".nuvom" / "manifest.json"
    refresh_manifest(AstDiscoverer(), project, path)
    jobs = project / "app" / "jobs.py"
    jobs.write_text(task_src("send", "(retries=5, tags=['mail'])") + task_src("crop"), encoding="utf-8")
    diff = refresh_manifest(AstDiscoverer(), project, path)
    assert [t.name for t in diff.added] == ["crop"]
    assert [t.name for t in diff.removed] == ["resize"]
    assert [(m.after.name, m.changed, m.before.options["retries"], m.after.options["retries"]) for m in diff.modified] == [
        ("send", ["options"], 2, 5)
    ]
    assert diff.files_parsed == 1 and diff.written
    assert sorted(manifest_modules(load_manifest(path))) == ["crop", "report", "send"]  # type: ignore[arg-type]


def test_manifest_refresh_reuses_recorded_root_and_filters(project: Path, monkeypatch) -> None:
    path = project / ".nuvom" / "manifest.json"
    refresh_manifest(AstDiscoverer(), project, path, exclude=["src/"], project=project)
    monkeypatch.chdir(project)
    monkeypatch.delenv("NUVOM_PROJECT_ROOT", raising=False)
    diff = refresh_manifest(AstDiscoverer(), None, path)
    assert diff.manifest.exclude == ["src/"]
    assert sorted(manifest_modules(diff.manifest)) == ["resize", "send"]
    assert not diff.written


def test_manifest_recorded_root_is_relative_to_the_project(project: Path, tmp_path: Path) -> None:
    """A copy of the project scans the copy, not the directory the manifest was written in."""
    import shutil

    path = project / ".nuvom" / "manifest.json"
    refresh_manifest(AstDiscoverer(), project / "app", path, project=project)
    assert json.loads(path.read_text(encoding="utf-8"))["scan_root"] == "app"
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    (copy / "app" / "jobs.py").write_text(task_src("copied"), encoding="utf-8")
    diff = refresh_manifest(AstDiscoverer(), None, copy / ".nuvom" / "manifest.json", project=copy)
    assert [t.name for t in diff.manifest.tasks] == ["copied"]
    assert diff.manifest.root == (copy / "app").resolve().as_posix()


def test_manifest_worker_helpers(project: Path) -> None:
    diff = refresh_manifest(AstDiscoverer(), project, project / "m.json")
    assert manifest_modules(diff.manifest) == {"report": "lib.more", "resize": "app.jobs", "send": "app.jobs"}
    root = project.resolve()
    assert manifest_import_paths(diff.manifest, root) == [root, root / "src"]
    assert manifest_import_paths(diff.manifest, "/elsewhere") == [Path("/elsewhere"), Path("/elsewhere/src")]


@pytest.mark.parametrize(
    ("path", "module", "expected"),
    [("src/lib/more.py", "lib.more", "src"), ("app/jobs.py", "app.jobs", ""),
     ("a/b/__init__.py", "a.b", ""), ("x/y/z.py", "q.z", "")],
)
def test_manifest_import_root_of(path: str, module: str, expected: str) -> None:
    assert import_root_of(path, module) == expected


def test_manifest_default_path_follows_settings(tmp_path: Path) -> None:
    settings = NuvomSettings(manifest_path="state/tasks.json")
    assert default_manifest_path(settings, tmp_path) == tmp_path / "state" / "tasks.json"
    assert default_manifest_path(NuvomSettings(), tmp_path) == tmp_path / ".nuvom" / "manifest.json"


def test_manifest_missing_is_none(tmp_path: Path) -> None:
    assert load_manifest(tmp_path / "nothing.json") is None


@pytest.mark.parametrize(
    "content",
    [
        # Nuvom 0.11's format
        {"version": "1.0", "tasks": [{"file_path": "/x/a.py", "func_name": "a", "module_name": "a"}]},
        {"version": 1, "tasks": []},
        {"tasks": []},
        {"version": True},
    ],
    ids=["nuvom_0_11", "int_1", "no_version", "bool"],
)
def test_manifest_older_version_is_rebuilt(project: Path, content: dict, caplog) -> None:
    path = project / ".nuvom" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(content), encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="nuvom.manifest"):
        assert load_manifest(path) is None
    assert "rebuilt" in caplog.text
    diff = refresh_manifest(AstDiscoverer(), project, path)
    assert (diff.created, diff.written) == (True, True)
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == MANIFEST_VERSION


@pytest.mark.parametrize("content", ["{not json", '{"version": 2, "root": 5, "tasks": "x"}', "[]"])
def test_manifest_damaged_file_is_rebuilt(project: Path, content: str) -> None:
    path = project / "manifest.json"
    path.write_text(content, encoding="utf-8")
    assert load_manifest(path) is None
    assert refresh_manifest(AstDiscoverer(), project, path).written


def test_manifest_newer_version_is_refused(project: Path) -> None:
    path = project / "manifest.json"
    path.write_text(json.dumps({"version": MANIFEST_VERSION + 1, "whatever": []}), encoding="utf-8")
    with pytest.raises(ManifestVersionError, match="newer Nuvom") as info:
        load_manifest(path)
    assert isinstance(info.value, NuvomError)
    assert "upgrade Nuvom" in str(info.value) and "delete the file" in str(info.value)
    with pytest.raises(ManifestVersionError):
        refresh_manifest(AstDiscoverer(), project, path)
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == MANIFEST_VERSION + 1


def test_manifest_save_round_trip_and_no_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "manifest.json"
    manifest = Manifest(root="/p", tasks=[ManifestTask(name="a", module="m", qualname="a", path="m.py", line=1)])
    save_manifest(manifest, path)
    assert load_manifest(path) == manifest
    assert os.listdir(path.parent) == ["manifest.json"]


def test_manifest_save_is_atomic_when_replace_fails(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "manifest.json"
    original = Manifest(root="/p")
    save_manifest(original, path)
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(manifest_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        save_manifest(Manifest(root="/other", tasks=[ManifestTask(name="b", module="m", qualname="b", path="m.py")]), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_manifest_refresh_missing_root_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        refresh_manifest(AstDiscoverer(), tmp_path / "missing", tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()
