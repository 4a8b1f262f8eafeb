"""``nuvom discover tasks`` and ``nuvom list tasks`` through typer's CliRunner,
with the commands attached by the plugin's ``nuvom_register_commands`` hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from nuvom_cli.state import CliState
from nuvom_discovery_ast import cli as cli_module
from nuvom_discovery_ast import plugin
from typer.testing import CliRunner

from nuvom_kernel.manager import NuvomPluginManager

TASK = "from nuvom import task\n@task{args}\ndef {name}(): ...\n"


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """nuvom (test root app)."""

    plugin.nuvom_register_commands(app, CliState(plugins=NuvomPluginManager(Path.cwd())))
    return app


@pytest.fixture
def project(write_tree, monkeypatch) -> Path:
    root = write_tree({
        "app/__init__.py": "",
        "app/jobs.py": (
            TASK.format(name="send_email", args="(tags=['mail', 'io'], queue='mail', retries=3, "
                                                "timeout_secs=30, description='Send one email')")
            + "\n@task(retries=LIMIT)\nasync def crunch(): ...\n"
        ),
        "app/broken.py": "def f(:\n",
    }, old=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("NUVOM_PROJECT_ROOT", str(root))
    monkeypatch.setenv("COLUMNS", "200")  # Rich wraps tables to the terminal width
    for name in ("NUVOM_MANIFEST_PATH",):
        monkeypatch.delenv(name, raising=False)
    return root


def run(*args: str):
    return CliRunner().invoke(make_app(), list(args), catch_exceptions=False)


def test_cli_discover_prints_changes_and_problems(project: Path) -> None:
    result = run("discover", "tasks")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Task changes" in out
    assert "send_email" in out and "crunch" in out and "added" in out
    assert "syntax_error" in out and "app/broken.py:1" in out
    assert "non_literal_argument" in out
    assert "2 task(s)" in out and "manifest written" in out
    assert (project / ".nuvom" / "manifest.json").is_file()

    again = run("discover", "tasks")
    assert again.exit_code == 0
    assert "No task changes." in again.output
    assert "manifest unchanged" in again.output


def test_cli_discover_json(project: Path) -> None:
    result = run("discover", "tasks", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["name"] for t in data["added"]] == ["crunch", "send_email"]
    assert {p["kind"] for p in data["problems"]} == {"syntax_error", "non_literal_argument"}
    assert data["written"] is True and data["files_parsed"] == 3

    (project / "app" / "jobs.py").write_text(TASK.format(name="send_email", args=""), encoding="utf-8")
    data = json.loads(run("discover", "tasks", "--json").stdout)
    assert [t["name"] for t in data["removed"]] == ["crunch"]
    assert [(m["name"], m["changed"]) for m in data["modified"]] == [("send_email", ["options"])]


def test_cli_discover_root_include_exclude(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "keep").mkdir(parents=True)
    (other / "skip").mkdir()
    (other / "keep" / "a.py").write_text(TASK.format(name="kept", args=""), encoding="utf-8")
    (other / "keep" / "b_test.py").write_text(TASK.format(name="filtered", args=""), encoding="utf-8")
    (other / "skip" / "c.py").write_text(TASK.format(name="skipped", args=""), encoding="utf-8")
    result = run("discover", "tasks", "--root", str(other), "--include", "keep/", "--exclude", "*_test.py", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["name"] for t in data["added"]] == ["kept"]
    # the manifest lives in the project, and remembers the scan's root and filters
    manifest = json.loads((project / ".nuvom" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["root"] == other.resolve().as_posix()
    assert (manifest["include"], manifest["exclude"]) == (["keep/"], ["*_test.py"])


def test_cli_discover_missing_root_exits_2_like_any_bad_usage(project: Path) -> None:
    result = run("discover", "tasks", "--root", str(project / "nope"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_cli_discover_refuses_newer_manifest(project: Path) -> None:
    path = project / ".nuvom" / "manifest.json"
    path.parent.mkdir()
    path.write_text('{"version": 99}', encoding="utf-8")
    for args in (("discover", "tasks"), ("list", "tasks")):
        result = run(*args)
        assert result.exit_code == 1
        assert "newer Nuvom" in result.output and "upgrade Nuvom" in result.output


def test_cli_discover_shows_progress_on_large_trees(project: Path, monkeypatch) -> None:
    seen: list[tuple[int, int]] = []
    real_call = cli_module._ProgressBar.__call__

    def spy(self, done: int, total: int) -> None:
        seen.append((done, total))
        real_call(self, done, total)
        if done == 0:
            assert self.progress is not None

    monkeypatch.setattr(cli_module, "PROGRESS_THRESHOLD", 2)
    monkeypatch.setattr(cli_module._ProgressBar, "__call__", spy)
    result = run("discover", "tasks")
    assert result.exit_code == 0, result.output
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)


def test_cli_list_without_manifest_exits_3_like_any_missing_object(project: Path) -> None:
    result = run("list", "tasks")
    assert result.exit_code == 3
    assert "nuvom discover tasks" in result.output


def test_cli_list_tasks_table_and_json(project: Path) -> None:
    assert run("discover", "tasks").exit_code == 0
    result = run("list", "tasks")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("send_email", "app.jobs", "app/jobs.py:3", "mail, io", "Send one", "30", "crunch (async)"):
        assert text in out
    assert "problem(s) were found" in out

    data = json.loads(run("list", "tasks", "--json").stdout)
    assert [(t["name"], t["module"], t["path"], t["is_async"]) for t in data] == [
        ("crunch", "app.jobs", "app/jobs.py", True), ("send_email", "app.jobs", "app/jobs.py", False)
    ]
    assert data[1]["options"]["queue"] == "mail"


def test_cli_list_empty_manifest(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("discover", "tasks", "--root", str(empty)).exit_code == 0
    result = run("list", "tasks")
    assert result.exit_code == 0
    assert "No tasks in the manifest" in result.output


def test_cli_manifest_path_setting(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("NUVOM_MANIFEST_PATH", "state/tasks.json")
    assert run("discover", "tasks").exit_code == 0
    assert (project / "state" / "tasks.json").is_file()
    assert not (project / ".nuvom" / "manifest.json").exists()
    assert "send_email" in run("list", "tasks").output


def test_cli_shows_brackets_in_user_text_verbatim(project: Path) -> None:
    (project / "app" / "odd.py").write_text(
        "from nuvom import task\n@task(name='[bold]odd', tags=[X])\ndef f(): ...\n", encoding="utf-8"
    )
    out = run("discover", "tasks").output
    assert "[bold]odd" in out
    assert "tags=[X]" in out
    assert "[bold]odd" in run("list", "tasks").output


def test_plugin_registers_ast_discoverer() -> None:
    from importlib.metadata import entry_points

    from nuvom_discovery_ast import AstDiscoverer

    from nuvom_kernel.contracts import Discoverer
    from nuvom_kernel.errors import ConfigError
    from nuvom_kernel.settings import NuvomSettings

    registered: dict[str, object] = {}
    plugin.nuvom_register_discoverers(lambda name, factory, description=None: registered.setdefault(name, factory))
    factory = registered["ast"]
    component = factory(NuvomSettings(), {})  # type: ignore[operator]
    assert isinstance(component, AstDiscoverer) and isinstance(component, Discoverer)
    with pytest.raises(ConfigError, match="takes no options"):
        factory(NuvomSettings(), {"exclude": ["x"]})  # type: ignore[operator]
    eps = {ep.name: ep.value for ep in entry_points(group="nuvom")}
    assert eps.get("nuvom-discovery-ast") == "nuvom_discovery_ast.plugin"
