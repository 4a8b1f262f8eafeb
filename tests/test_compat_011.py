"""Nuvom 0.11 plugins, written as 0.11's scaffold and docs show them, through the real CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import nuvom_cmd, subprocess_env

# What 0.11's `nuvom plugin scaffold hello` generated, with start/stop made observable.
PLUGIN_011 = '''\
from pathlib import Path

from nuvom.plugins.contracts import Plugin

EVENTS = Path(__file__).with_name("events.txt")

class Hello(Plugin):
    api_version = "1.0"
    name = "hello"
    provides = ["queue_backend"]      # "queue_backend", "result_backend", or other
    requires = []                    # List dependencies this plugin needs

    def start(self, settings: dict) -> None:
        # Initialize plugin (e.g. connect to service, configure hooks)
        with EVENTS.open("a") as f:
            f.write(f"start {settings.get('queue_backend')}\\n")

    def stop(self) -> None:
        # Cleanup plugin resources
        with EVENTS.open("a") as f:
            f.write("stop\\n")
'''

REGISTRY_011 = '''\
from nuvom.plugins.registry import register_queue_backend
'''


def nuvom(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nuvom_cmd() + args, capture_output=True, text=True, cwd=root,
                          env=subprocess_env(root), timeout=120)


def test_011_plugin_loads_tests_and_runs_in_a_worker(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(PLUGIN_011, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nhello = ["hello:Hello"]\n', encoding="utf-8")
    records = {r["name"]: r for r in json.loads(nuvom(["plugin", "status", "--json"], tmp_path).stdout)}
    assert records["hello"]["loaded"] and records["hello"]["error"] is None, records.get("hello")
    tested = nuvom(["plugin", "test", "./hello.py", "--json"], tmp_path)  # as 0.11's FAQ shows
    assert tested.returncode == 0 and json.loads(tested.stdout)["ok"], tested.stdout
    (tmp_path / "events.txt").unlink()
    worker = nuvom(["runworker", "--burst"], tmp_path)
    assert worker.returncode == 0, worker.stderr
    assert (tmp_path / "events.txt").read_text().split("\n") == ["start sqlite", "stop", ""]


def test_011_registry_import_says_what_replaces_it(tmp_path: Path) -> None:
    (tmp_path / "old_backend.py").write_text(REGISTRY_011, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["old_backend"]\n', encoding="utf-8")
    records = json.loads(nuvom(["plugin", "status", "--json"], tmp_path).stdout)
    error = next(r["error"] for r in records if r["name"] == "old_backend")
    assert "nuvom_register_queue_backends" in error and "nuvom.plugins.contracts.Plugin" in error


def test_011_package_exports_get_settings_and_get_logger(tmp_path: Path) -> None:
    import nuvom

    app = nuvom.Nuvom(root=tmp_path, environ={"NUVOM_QUEUE_BACKEND": "memory"})
    with nuvom.use_app(app):
        assert nuvom.get_settings() is app.settings and nuvom.get_settings().queue_backend == "memory"
    assert nuvom.get_logger().name == "nuvom"
    assert nuvom.get_logger("worker").name == nuvom.get_logger("nuvom.worker").name == "nuvom.worker"
