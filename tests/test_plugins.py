"""The plugin manager and registries through their public interfaces."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import nuvom_cmd, subprocess_env

from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import ComponentNotFoundError, DuplicateComponentError, PluginError
from nuvom_kernel.lifecycle import NuvomContext
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.settings import NuvomSettings

BUILTINS = {
    "nuvom-backend-memory": {"queue_backends": ["memory"], "result_backends": ["memory"]},
    "nuvom-backend-sqlite": {"queue_backends": ["sqlite"], "result_backends": ["sqlite"]},
    "nuvom-backend-file": {"queue_backends": ["file"], "result_backends": ["file"]},
    "nuvom-executor-thread": {"executors": ["thread"]},
    "nuvom-discovery-ast": {"discoverers": ["ast"]},
}


def fake_distribution(site: Path, dist: str, module: str, source: str) -> None:
    """A real installed distribution (dist-info + entry point) without pip."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[nuvom]\n{dist} = {module}\n", encoding="utf-8")


GOOD = """
from nuvom_kernel import hookimpl

class Q:
    def __init__(self, options):
        self.options = options

@hookimpl
def nuvom_register_queue_backends(register):
    register("fancy", lambda settings, options: Q(options), description="a fancy queue")
"""


def test_builtins_are_listed_with_what_they_provide(tmp_path: Path) -> None:
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    status = {r.name: r for r in pm.plugin_status()}
    for name, provides in BUILTINS.items():
        assert name in status, f"{name} not loaded"
        assert status[name].loaded and status[name].error is None
        assert status[name].provides == provides
        assert status[name].origin == "entry point" and status[name].version


def test_plugin_that_raises_on_import_is_reported_and_cli_still_works(tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "nuvom-broken", "nuvom_broken", "raise RuntimeError('kaboom at import')\n")
    env = subprocess_env(tmp_path, PYTHONPATH=str(site))
    out = subprocess.run(nuvom_cmd() + ["plugin", "status", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    records = {r["name"]: r for r in json.loads(out.stdout)}
    assert "kaboom at import" in records["nuvom-broken"]["error"]
    assert records["nuvom-broken"]["loaded"] is False
    assert records["nuvom-backend-sqlite"]["provides"] == BUILTINS["nuvom-backend-sqlite"]
    version = subprocess.run(nuvom_cmd() + ["version"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert version.returncode == 0 and "nuvom" in version.stdout
    helped = subprocess.run(nuvom_cmd() + ["--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert helped.returncode == 0 and "runworker" in helped.stdout


def test_strict_mode_makes_load_errors_fatal(tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "nuvom-broken", "nuvom_broken2", "raise RuntimeError('kaboom')\n")
    env = subprocess_env(tmp_path, PYTHONPATH=str(site), NUVOM_STRICT_PLUGINS="1")
    out = subprocess.run(nuvom_cmd() + ["version"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "kaboom" in out.stderr


def test_misspelled_hook_fails_loading_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "typo_plugin.py").write_text(textwrap.dedent("""
        from nuvom_kernel import hookimpl

        @hookimpl
        def nuvom_job_finshed(job, record):
            pass
    """), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./typo_plugin.py"]\n', encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    record = next(r for r in pm.plugin_status() if "typo_plugin" in r.name)
    assert not record.loaded
    assert "nuvom_job_finshed" in (record.error or "") and "did you mean nuvom_job_finished" in (record.error or "")
    with pytest.raises(PluginError, match="did you mean nuvom_job_finished"):
        NuvomPluginManager(tmp_path, environ={"NUVOM_STRICT_PLUGINS": "1"}).load()


def test_two_plugins_registering_the_same_backend_are_refused(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / f"{name}.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./one.py", "./two.py"]\n', encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    with pytest.raises(DuplicateComponentError) as info:
        pm.registries  # noqa: B018
    assert "'fancy'" in str(info.value) and "./one.py" in str(info.value) and "./two.py" in str(info.value)


def test_selecting_a_backend_that_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nuvom_kernel import registry

    # every well-known backend is published now: a planned one stands in
    monkeypatch.setitem(registry.PLANNED, ("queue_backends", "someday"), "a someday backend")
    app = Nuvom(root=tmp_path, environ={}, queue_backend="someday")
    with pytest.raises(ComponentNotFoundError) as info:
        app.queue  # noqa: B018
    message = str(info.value)
    assert "'someday' (given as an option or argument)" in message
    assert "memory" in message and "sqlite" in message  # what is installed
    assert "not published yet" in message and "pip install" not in message  # no advice to install what does not exist
    other = Nuvom(root=tmp_path, environ={}, queue_backend="sqlit")
    with pytest.raises(ComponentNotFoundError, match="did you mean 'sqlite'"):
        other.queue  # noqa: B018


def test_plugins_file_modules_settings_and_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "myproj"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "queueplug.py").write_text(GOOD.replace("fancy", "fancy-dotted"), encoding="utf-8")
    (tmp_path / "local_plugin.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text(textwrap.dedent("""
        [plugins]
        modules = ["myproj.queueplug", "./local_plugin.py"]
        disabled = ["nuvom-backend-file"]

        [plugins.settings."./local_plugin.py"]
        url = "http://127.0.0.1:1"
    """), encoding="utf-8")
    app = Nuvom(root=tmp_path, environ={}, queue_backend="fancy")
    assert app.queue.options == {"url": "http://127.0.0.1:1"}  # type: ignore[attr-defined]
    names = app.plugins.registries["queue_backends"].names()
    assert "fancy-dotted" in names and "file" not in names
    assert str(tmp_path) not in sys.path  # listed modules do not leave the project on sys.path


def test_nothing_is_imported_from_the_project_unless_listed(tmp_path: Path) -> None:
    (tmp_path / "nuvom_sneaky.py").write_text("raise SystemExit('imported!')\n", encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    assert not any("sneaky" in r.name for r in pm.plugin_status())


def test_legacy_plugins_file_keys(tmp_path: Path) -> None:
    (tmp_path / "old_style.py").write_text(GOOD.replace("fancy", "legacy-q"), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nqueue_backend = ["./old_style.py"]\n', encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    assert "legacy-q" in pm.registries["queue_backends"].names()


def test_allow_and_block_lists(tmp_path: Path) -> None:
    only = NuvomPluginManager(tmp_path, environ={"NUVOM_LOAD_PLUGINS": "nuvom-backend-memory"}).load()
    assert {r.name for r in only.plugin_status()} == {"nuvom-kernel", "nuvom-backend-memory"}
    blocked = NuvomPluginManager(tmp_path, environ={"NUVOM_DISABLE_PLUGINS": "nuvom-backend-memory, nuvom-cli"}).load()
    names = {r.name for r in blocked.plugin_status()}
    assert "nuvom-backend-memory" not in names and "nuvom-cli" not in names and "nuvom-backend-sqlite" in names


def test_trace_switch_prints_hook_calls(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    pm = NuvomPluginManager(tmp_path, environ={"NUVOM_TRACE_PLUGINS": "1"}).load()
    pm.registries  # noqa: B018
    assert "nuvom_register_queue_backends" in capfd.readouterr().err


LEGACY_PLUGIN = """
events = []

class MetricsPlugin:
    name = "old-metrics"
    api_version = "{version}"
    provides = ["monitoring"]
    requires = []

    def start(self, settings):
        events.append(("start", settings["port"], settings["max_workers"]))

    def stop(self):
        events.append(("stop",))
"""


def test_011_protocol_plugin_is_adapted_onto_lifecycle_hooks(tmp_path: Path) -> None:
    (tmp_path / "legacy_metrics.py").write_text(LEGACY_PLUGIN.format(version="1.0"), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text(
        '[plugins]\nmonitoring = ["./legacy_metrics.py:MetricsPlugin"]\n\n[plugins.settings.old-metrics]\nport = 9999\n',
        encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    record = next(r for r in pm.plugin_status() if r.name == "old-metrics")
    assert record.loaded and record.hooks == ["nuvom_shutdown", "nuvom_startup"]
    ctx = NuvomContext(settings=NuvomSettings(max_workers=3), role="worker")
    pm.startup(ctx)
    pm.shutdown(ctx)
    module = sys.modules[next(m for m in sys.modules if m.startswith("nuvom_local_plugin_legacy_metrics"))]
    assert module.events == [("start", 9999, 3), ("stop",)]


def test_011_plugin_with_incompatible_api_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "future_plugin.py").write_text(LEGACY_PLUGIN.format(version="2.0"), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./future_plugin.py:MetricsPlugin"]\n', encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    record = next(r for r in pm.plugin_status() if r.name == "old-metrics")
    assert not record.loaded and "plugin API 2.0" in (record.error or "") and "1.0" in (record.error or "")


def test_011_plugins_are_adapted_by_the_compat_plugin_not_the_kernel(tmp_path: Path) -> None:
    (tmp_path / "legacy_metrics.py").write_text(LEGACY_PLUGIN.format(version="1.0"), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./legacy_metrics.py"]\n', encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={}).load()
    assert pm.records["nuvom-compat-011"].hooks == ["nuvom_adapt_plugin"]
    assert pm.records["old-metrics"].loaded  # a module defining a 0.11 plugin class
    alone = NuvomPluginManager(tmp_path, environ={"NUVOM_LOAD_PLUGINS": "nuvom-backend-memory"}).load()
    record = alone.records["./legacy_metrics.py"]
    assert not record.loaded and "needs the nuvom-compat-011 plugin" in (record.error or "")
    both = NuvomPluginManager(tmp_path, environ={"NUVOM_LOAD_PLUGINS": "nuvom-compat-011"}).load()
    assert both.records["old-metrics"].loaded


def test_observer_hook_failures_are_isolated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "bad_observer.py").write_text(textwrap.dedent("""
        from nuvom_kernel import hookimpl
        seen = []

        @hookimpl
        def nuvom_job_enqueued(job):
            raise RuntimeError("metrics down")
    """), encoding="utf-8")
    (tmp_path / "good_observer.py").write_text(textwrap.dedent("""
        from nuvom_kernel import hookimpl
        seen = []

        @hookimpl
        def nuvom_job_enqueued(job):
            seen.append(job.id)
    """), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text(
        '[plugins]\nmodules = ["./bad_observer.py", "./good_observer.py"]\n', encoding="utf-8")
    from nuvom_backend_memory import MemoryBackend

    from nuvom_kernel.models import Job

    app = Nuvom(root=tmp_path, environ={}, queue=MemoryBackend())
    job = app.enqueue(Job(task="x"))
    good = sys.modules[next(m for m in sys.modules if m.startswith("nuvom_local_plugin_good_observer"))]
    assert good.seen == [job.id]
    assert "metrics down" in caplog.text and "bad_observer" in caplog.text


def _status(tmp_path: Path, env: dict[str, Any]) -> list[dict[str, Any]]:
    out = subprocess.run(nuvom_cmd() + ["plugin", "status", "--json"], capture_output=True, text=True,
                         env=subprocess_env(tmp_path, **env), cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_plugin_status_json_lists_every_builtin(tmp_path: Path) -> None:
    records = {r["name"]: r for r in _status(tmp_path, {})}
    for name, provides in BUILTINS.items():
        assert records[name]["provides"] == provides
        assert records[name]["hooks"]
    assert records["nuvom-cli"]["hooks"] == ["nuvom_register_commands"]


def test_kernel_without_plugins_says_what_to_enable(tmp_path: Path) -> None:
    app = Nuvom(root=tmp_path, environ={"NUVOM_LOAD_PLUGINS": ""})
    assert [r.name for r in app.plugins.plugin_status()] == ["nuvom-kernel"]
    with pytest.raises(ComponentNotFoundError, match=r"nuvom-backend-sqlite is installed but not in NUVOM_LOAD_PLUGINS"):
        app.queue  # noqa: B018
    with pytest.raises(ComponentNotFoundError, match=r"the default; set NUVOM_EXECUTOR"):
        app.create_executor()
    app.check_payload({"args": [1]}, "arguments")  # the kernel's own JSON serializer still works


def test_plugin_failing_to_add_commands_does_not_break_the_cli(tmp_path: Path) -> None:
    (tmp_path / "bad_commands.py").write_text(textwrap.dedent("""
        from nuvom_kernel import hookimpl

        @hookimpl
        def nuvom_register_commands(app):
            raise RuntimeError("commands exploded")
    """), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./bad_commands.py"]\n', encoding="utf-8")
    env = subprocess_env(tmp_path)
    helped = subprocess.run(nuvom_cmd() + ["--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert helped.returncode == 0 and "runworker" in helped.stdout
    assert "commands exploded" in helped.stderr
    status = subprocess.run(nuvom_cmd() + ["plugin", "status", "--json"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=60)
    record = next(r for r in json.loads(status.stdout) if r["name"] == "./bad_commands.py")
    assert "commands exploded" in record["error"]


def test_a_command_plugin_gets_the_typed_context_and_its_exit_codes(tmp_path: Path) -> None:
    from nuvom_cli.state import CliState

    from nuvom_kernel.components import CommandContext
    from nuvom_kernel.manager import NuvomPluginManager

    assert isinstance(CliState(plugins=NuvomPluginManager(tmp_path)), CommandContext)
    (tmp_path / "ctx_commands.py").write_text(textwrap.dedent("""
        from nuvom_kernel import hookimpl

        @hookimpl
        def nuvom_register_commands(app, cli):
            @app.command("lookup")
            def lookup(name: str) -> None:
                backend = cli.app().settings.queue_backend
                if name != "known":
                    cli.fail(f"no thing named {name!r} (backend {backend})", cli.EXIT_NOT_FOUND)
                cli.print_json({"name": name, "backend": backend})
    """), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./ctx_commands.py"]\n', encoding="utf-8")
    env = subprocess_env(tmp_path, NUVOM_QUEUE_BACKEND="sqlite")
    found = subprocess.run(nuvom_cmd() + ["lookup", "known"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == {"name": "known", "backend": "sqlite"}
    missing = subprocess.run(nuvom_cmd() + ["lookup", "nope"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert missing.returncode == 3
    assert "error: no thing named 'nope' (backend sqlite)" in missing.stderr
    tested = subprocess.run(nuvom_cmd() + ["plugin", "test", "./ctx_commands.py", "--json"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    [plugin] = json.loads(tested.stdout)["plugins"]
    commands = next(c for c in plugin["checks"] if c["check"] == "commands")
    assert commands["ok"] and "lookup" in commands["detail"], commands
