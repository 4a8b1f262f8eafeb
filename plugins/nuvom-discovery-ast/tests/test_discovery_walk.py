"""Which files are read: .nuvomignore, include/exclude, default excludes,
symlinks, and the module name each file gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nuvom_discovery_ast import AstDiscoverer
from nuvom_discovery_ast import walker as walker_module
from nuvom_discovery_ast.discoverer import module_for
from nuvom_discovery_ast.walker import DEFAULT_EXCLUDES

TASK = "from nuvom import task\n@task\ndef {name}(): ...\n"


def names(root: Path, **kwargs) -> list[str]:
    return sorted(t.name for t in AstDiscoverer().discover(str(root), **kwargs).tasks)


def test_discovery_nuvomignore_uses_gitignore_rules(write_tree) -> None:
    root = write_tree({
        ".nuvomignore": "# old code\nlegacy/\n*_old.py\n!keep_old.py\n\n/top_only.py\n",
        "legacy/a.py": TASK.format(name="legacy_a"),
        "app/legacy/b.py": TASK.format(name="nested_legacy_b"),
        "app/jobs_old.py": TASK.format(name="jobs_old"),
        "app/keep_old.py": TASK.format(name="keep_old"),
        "top_only.py": TASK.format(name="top_only"),
        "app/top_only.py": TASK.format(name="app_top_only"),
        "app/jobs.py": TASK.format(name="jobs"),
    })
    assert names(root) == ["app_top_only", "jobs", "keep_old"]


def test_discovery_include_and_exclude_globs(write_tree) -> None:
    root = write_tree({
        "app/jobs.py": TASK.format(name="jobs"),
        "app/tests/test_jobs.py": TASK.format(name="test_helper"),
        "scripts/tool.py": TASK.format(name="tool"),
    })
    assert names(root, include=["app/"]) == ["jobs", "test_helper"]
    assert names(root, exclude=["tests/"]) == ["jobs", "tool"]
    assert names(root, include=["app/**/*.py"], exclude=["test_*.py"]) == ["jobs"]
    assert names(root, include=["*.py"], exclude=["scripts"]) == ["jobs", "test_helper"]


@pytest.mark.parametrize("dirname", sorted(DEFAULT_EXCLUDES))
def test_discovery_default_excludes_at_any_depth(write_tree, dirname: str) -> None:
    root = write_tree({
        f"{dirname}/top.py": TASK.format(name="top"),
        f"app/{dirname}/deep.py": TASK.format(name="deep"),
        "app/jobs.py": TASK.format(name="jobs"),
    })
    assert names(root) == ["jobs"]


def test_discovery_prunes_excluded_directories(write_tree, monkeypatch) -> None:
    root = write_tree({
        ".nuvomignore": "generated/\n",
        "generated/x/y.py": TASK.format(name="gen"),
        "node_modules/pkg/z.py": TASK.format(name="nm"),
        "app/jobs.py": TASK.format(name="jobs"),
    })
    listed: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path):
        listed.append(Path(path).relative_to(root).as_posix())
        return real_scandir(path)

    monkeypatch.setattr(walker_module.os, "scandir", recording_scandir)
    assert names(root, exclude=["app/"]) == []
    assert sorted(listed) == ["."]


def _symlink_or_skip(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link, target_is_directory=True)
    except (OSError, NotImplementedError) as exc:
        pytest.skip(f"symlinks are not available here: {exc}")


def test_discovery_symlink_loop_terminates(write_tree) -> None:
    root = write_tree({"pkg/jobs.py": TASK.format(name="jobs")})
    _symlink_or_skip(root, root / "pkg" / "back_to_root")
    _symlink_or_skip(root / "pkg", root / "pkg" / "self")
    report = AstDiscoverer().discover(str(root))
    assert [t.name for t in report.tasks] == ["jobs"]
    assert report.files_scanned == 1


def test_discovery_follows_symlinked_directory_once(write_tree, tmp_path: Path) -> None:
    outside = tmp_path / "shared_lib"
    outside.mkdir()
    (outside / "extra.py").write_text(TASK.format(name="extra"), encoding="utf-8")
    root = write_tree({"app/jobs.py": TASK.format(name="jobs")})
    _symlink_or_skip(outside, root / "linked")
    _symlink_or_skip(outside, root / "linked_again")
    report = AstDiscoverer().discover(str(root))
    assert [(t.name, t.path) for t in report.tasks] == [("jobs", "app/jobs.py"), ("extra", "linked/extra.py")]
    assert [p["kind"] for p in report.problems] == []


def test_discovery_missing_root_is_a_config_error(tmp_path: Path) -> None:
    from nuvom_kernel.errors import ConfigError

    with pytest.raises(ConfigError, match="not a directory"):
        AstDiscoverer().discover(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("rel", "src_is_package", "module"),
    [
        ("a/b/c.py", False, "a.b.c"),
        ("a/b/__init__.py", False, "a.b"),
        ("jobs.py", False, "jobs"),
        ("src/pkg/mod.py", False, "pkg.mod"),
        ("src/pkg/mod.py", True, "src.pkg.mod"),
        ("src/tool.py", False, "tool"),
        ("my-scripts/job.py", False, None),
        ("a/class/b.py", False, None),
        ("a/b.c.py", False, None),
        ("__init__.py", False, None),
    ],
)
def test_discovery_module_names(rel: str, src_is_package: bool, module: str | None) -> None:
    assert module_for(rel, src_is_package) == module


def test_discovery_src_layout_and_unimportable_paths(write_tree) -> None:
    root = write_tree({
        "src/shop/__init__.py": "",
        "src/shop/jobs.py": TASK.format(name="ship"),
        "my-scripts/run.py": TASK.format(name="hidden"),
    })
    report = AstDiscoverer().discover(str(root))
    assert [(t.name, t.module) for t in report.tasks] == [("ship", "shop.jobs")]
    assert [(p["kind"], p["path"]) for p in report.problems] == [("unimportable_module", "my-scripts/run.py")]
