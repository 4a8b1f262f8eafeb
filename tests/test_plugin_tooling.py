"""`nuvom plugin test`, `nuvom plugin scaffold`, the cookiecutter template and
docs/plugins.md, through their real interfaces (subprocesses of `nuvom`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import venv
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, make_app, nuvom_cmd, running_worker, subprocess_env

from nuvom import task
from nuvom_kernel import hookspecs
from nuvom_kernel.app import use_app
from nuvom_kernel.models import Job, JobState

KINDS = ["queue-backend", "result-backend", "executor", "discoverer", "commands", "lifecycle"]


def run_nuvom(args: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nuvom_cmd() + args, capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(cwd, **env), timeout=timeout)


def plugin_test(target: str, cwd: Path, *extra: str, **env: str) -> tuple[int, dict[str, Any]]:
    out = run_nuvom(["plugin", "test", target, "--json", *extra], cwd, **env)
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for p in report["plugins"] for c in p["checks"]}


# -- plugin test on built-ins, modules, files -----------------------------------------


def test_builtin_backend_passes_both_contracts(tmp_path: Path) -> None:
    code, report = plugin_test("nuvom-backend-memory", tmp_path)
    assert code == 0, report
    rows = checks(report)
    assert {"load", "hooks", "registration"} <= set(rows)
    assert rows["contract: queue backend 'memory'"]["ok"]
    assert re.fullmatch(r"\d+ passed", rows["contract: queue backend 'memory'"]["detail"])
    assert rows["contract: result backend 'memory'"]["ok"]
    assert report["plugins"][0]["provides"] == {"queue_backends": ["memory"], "result_backends": ["memory"]}


def test_builtin_executor_by_entry_point_name_with_table_output(tmp_path: Path) -> None:
    out = run_nuvom(["plugin", "test", "nuvom-executor-thread"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "contract: executor 'thread'" in out.stdout and "checks passed" in out.stdout


HELLO_PLUGIN = """
from nuvom_backend_memory import MemoryBackend
from nuvom_kernel import hookimpl


@hookimpl
def nuvom_register_queue_backends(register):
    register("hello", lambda settings, options: MemoryBackend())
"""


def test_dotted_module_as_in_the_faq(tmp_path: Path) -> None:
    package = tmp_path / "code" / "nuvom_hello"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "plugin.py").write_text(HELLO_PLUGIN, encoding="utf-8")
    out = run_nuvom(["plugin", "test", "nuvom_hello.plugin"], tmp_path, PYTHONPATH=str(tmp_path / "code"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "contract: queue backend 'hello'" in out.stdout


MY_PLUGIN = """
import nuvom
from nuvom_executor_thread.executor import ThreadExecutor

seen = []


@nuvom.hookimpl
def nuvom_register_executors(register):
    register("mine", lambda settings, options: ThreadExecutor())


@nuvom.hookimpl
def nuvom_job_finished(job, record):
    seen.append(record.state)
"""


def test_file_path_as_in_the_faq(tmp_path: Path) -> None:
    (tmp_path / "my_plugin.py").write_text(MY_PLUGIN, encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "nuvom_cli", "plugin", "test", "./my_plugin.py"],
                         capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(tmp_path), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "contract: executor 'mine'" in out.stdout and "lifecycle" in out.stdout


PROTOCOL_PLUGIN = """
from pathlib import Path

LOG = Path(__file__).with_name("events.txt")


class MetricsPlugin:
    name = "old-metrics"
    api_version = "{version}"
    provides = ["monitoring"]
    requires = []

    def start(self, settings):
        LOG.write_text(LOG.read_text() + "start\\n" if LOG.exists() else "start\\n")

    def stop(self):
        LOG.write_text(LOG.read_text() + "stop\\n")
"""


def test_011_protocol_plugin_is_started_and_stopped(tmp_path: Path) -> None:
    (tmp_path / "metrics.py").write_text(PROTOCOL_PLUGIN.format(version="1.0"), encoding="utf-8")
    code, report = plugin_test("./metrics.py", tmp_path)
    assert code == 0, report
    rows = checks(report)
    assert rows["api_version"]["ok"] and rows["api_version"]["detail"].startswith("1.0")
    assert rows["provides"]["detail"] == "monitoring"
    assert rows["start/stop"]["ok"]
    assert (tmp_path / "events.txt").read_text().split() == ["start", "stop"]
    assert report["plugins"][0]["name"] == "old-metrics"


def test_011_protocol_plugin_with_another_api_major_fails(tmp_path: Path) -> None:
    (tmp_path / "future.py").write_text(PROTOCOL_PLUGIN.format(version="2.0"), encoding="utf-8")
    code, report = plugin_test("./future.py", tmp_path)
    assert code == 1
    assert "plugin API 2.0" in checks(report)["load"]["detail"]


def test_misspelled_hook_fails_with_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(textwrap.dedent("""
        from nuvom_kernel import hookimpl

        @hookimpl
        def nuvom_job_finshed(job, record):
            pass
    """), encoding="utf-8")
    code, report = plugin_test("./typo.py", tmp_path)
    assert code == 1
    assert "did you mean nuvom_job_finished" in checks(report)["load"]["detail"]


def test_undecorated_hook_and_raising_hooks_fail(tmp_path: Path) -> None:
    (tmp_path / "sloppy.py").write_text(textwrap.dedent("""
        from nuvom_kernel import hookimpl

        def nuvom_job_started(job):  # forgot @hookimpl: it would never run
            pass

        @hookimpl
        def nuvom_job_dead(job, reason):
            raise RuntimeError("metrics server down")

        @hookimpl
        def nuvom_register_commands(app):
            raise RuntimeError("no commands today")
    """), encoding="utf-8")
    code, report = plugin_test("./sloppy.py", tmp_path)
    assert code == 1
    rows = checks(report)
    assert "nuvom_job_started is named like a hook but is not decorated" in rows["hooks"]["detail"]
    assert not rows["lifecycle"]["ok"] and "nuvom_job_dead raised RuntimeError: metrics server down" in rows["lifecycle"]["detail"]
    assert not rows["commands"]["ok"] and "no commands today" in rows["commands"]["detail"]


BROKEN_BACKEND = """
from nuvom_backend_memory import MemoryBackend
from nuvom_kernel import hookimpl
from nuvom_kernel.models import apply_outcome


class TrustingBackend(MemoryBackend):
    # the bug: a stale token is accepted, so a worker that lost its lease overwrites the result
    def finish(self, job_id, token, outcome):
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            apply_outcome(job, outcome)
            return True


@hookimpl
def nuvom_register_queue_backends(register):
    register("trusting", lambda settings, options: TrustingBackend())
"""


def test_backend_violating_the_contract_fails_naming_the_test(tmp_path: Path) -> None:
    (tmp_path / "trusting.py").write_text(BROKEN_BACKEND, encoding="utf-8")
    code, report = plugin_test("./trusting.py", tmp_path)
    assert code == 1
    row = checks(report)["contract: queue backend 'trusting'"]
    assert not row["ok"]
    failed = [f["test"] for f in row["failures"]]
    assert "test_stale_token_is_refused" in failed, failed
    out = run_nuvom(["plugin", "test", "./trusting.py"], tmp_path)
    assert out.returncode == 1 and "test_stale_token_is_refused" in out.stdout


def test_a_target_that_cannot_be_found_exits_2(tmp_path: Path) -> None:
    for target in ("./missing.py", "nuvom-no-such-plugin", "no_such_module.plugin"):
        out = run_nuvom(["plugin", "test", target], tmp_path)
        assert out.returncode == 2, (target, out.stdout, out.stderr)
        assert "error" in out.stderr
    code, report = plugin_test("pydantic-settings", tmp_path)  # installed, but no nuvom entry point
    assert code == 2 and "declares no entry point" in report["error"]


def test_options_reach_the_factories_and_contracts_can_be_skipped(tmp_path: Path) -> None:
    code, report = plugin_test("nuvom-backend-file", tmp_path, "--no-contracts")
    assert code == 0 and not any(name.startswith("contract") for name in checks(report))
    code, report = plugin_test("nuvom-backend-sqlite", tmp_path, "--option", "bogus=1")
    row = checks(report)["contract: queue backend 'sqlite'"]
    assert code == 1 and "sqlite setting bogus (from options) is unknown" in row["failures"][0]["message"]
    out = run_nuvom(["plugin", "test", "nuvom-backend-sqlite", "--option", "no-equals-sign"], tmp_path)
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr


# -- scaffold ----------------------------------------------------------------------------


def test_scaffold_kinds_aliases_and_overwrite(tmp_path: Path) -> None:
    out = run_nuvom(["plugin", "scaffold", "metrics", "-c", "queue_backend", "--out", str(tmp_path)], tmp_path)
    assert out.returncode == 0, out.stderr
    project = tmp_path / "nuvom-metrics"
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points.nuvom]\nnuvom-metrics = "nuvom_metrics.plugin"' in pyproject
    assert '"nuvom-kernel>=1.0.0,<2"' in pyproject and 'test = ["pytest>=8"]' in pyproject
    modules = sorted(p.name for p in (project / "src" / "nuvom_metrics").iterdir())
    assert modules == ["__init__.py", "plugin.py", "py.typed", "queue.py"]
    again = run_nuvom(["plugin", "scaffold", "metrics", "--kind", "lifecycle", "--out", str(tmp_path)], tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    forced = run_nuvom(["plugin", "scaffold", "metrics", "--kind", "lifecycle", "--out", str(tmp_path), "--force"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (project / "src" / "nuvom_metrics" / "observer.py").is_file()
    bad = run_nuvom(["plugin", "scaffold", "metrics", "--kind", "scheduler", "--out", str(tmp_path)], tmp_path)
    assert bad.returncode == 2 and "queue-backend" in bad.stderr


def test_scaffold_copies_no_byte_code_an_installed_template_carries(tmp_path: Path) -> None:
    """pip byte-compiles the template's modules when it installs nuvom-cli; a
    rendered plugin must not ship the template's ``__pycache__``."""
    from nuvom_cli.commands.plugin_scaffold import TEMPLATE_DIR

    template = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, template)
    for package in (template / "{{cookiecutter.project_slug}}" / "src").iterdir():
        (package / "__pycache__").mkdir()
        (package / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"\x00compiled")
    out = run_nuvom(["plugin", "scaffold", "cached", "--kind", "executor", "--template", str(template),
                     "--out", str(tmp_path / "out")], tmp_path)
    assert out.returncode == 0, out.stderr
    project = tmp_path / "out" / "nuvom-cached"
    assert (project / "src" / "nuvom_cached" / "executor.py").is_file()
    assert list(project.rglob("__pycache__")) == []


# -- docs/plugins.md: every hook has an example, and every example runs --------------------

DOC = ROOT / "docs" / "plugins.md"


def hook_examples() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Every hook, with an example", 1)[1]
    return dict(re.findall(r"^### `(nuvom_\w+)`\s*\n+```python\n(.*?)```", section, re.M | re.S))


REGISTRATION_CONTRACTS = {
    "nuvom_register_storage": "storage ledger",
    "nuvom_register_queue_backends": "contract: queue backend 'scratch'",
    "nuvom_register_result_backends": "contract: result backend 'dict'",
    "nuvom_register_executors": "contract: executor 'io-threads'",
    "nuvom_register_discoverers": "contract: discoverer 'ast-no-tests'",
    "nuvom_register_serializers": "serializer compact-json",
    "nuvom_register_commands": "commands",
    "nuvom_register_settings": "settings",
    "nuvom_register_task_options": "task options",
}

LIFECYCLE_OUTPUT = {
    "nuvom_configure": "configure: queue backend is memory",
    "nuvom_startup": "startup: worker docs-worker",
    "nuvom_shutdown": "shutdown: worker docs-worker",
    "nuvom_job_enqueued": "enqueued: docs.double",
    "nuvom_job_started": "started: docs.flaky attempt 2",
    "nuvom_job_finished": "finished: docs.double -> succeeded",
    "nuvom_job_retrying": "retrying: docs.flaky after builtins.RuntimeError in 0s",
    "nuvom_job_dead": "dead: docs.unknown: unknown task",
    "nuvom_leases_expired": "leases expired: 1 (swept by docs-worker)",
    "nuvom_execute_job": "execute: docs.double returned 42",
}

#: hooks whose example is run by a test of its own below
OTHER_EXAMPLES = {"nuvom_log_handler", "nuvom_schedule_next_fire", "nuvom_schedule_task", "nuvom_schedule_fired",
                  "nuvom_adapt_plugin"}

_flaky_calls: list[int] = []


@task(name="docs.double")
def double(x: int) -> int:
    return 2 * x


@task(name="docs.flaky", retries=1, retry_delay_secs=0)
def flaky() -> str:
    _flaky_calls.append(1)
    if len(_flaky_calls) == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


def test_every_hook_has_an_example_in_plugins_md() -> None:
    hooks = {n for n in dir(hookspecs) if n.startswith("nuvom_")}
    missing = hooks - set(hook_examples())
    assert not missing, f"hooks without an example in docs/plugins.md: {sorted(missing)}"
    assert set(REGISTRATION_CONTRACTS) | set(LIFECYCLE_OUTPUT) | OTHER_EXAMPLES == hooks


def test_adapt_plugin_example_loads_another_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nuvom_kernel.manager import NuvomPluginManager

    (tmp_path / "adapter.py").write_text(hook_examples()["nuvom_adapt_plugin"], encoding="utf-8")
    (tmp_path / "watcher.py").write_text(textwrap.dedent("""\
        class Watcher:
            name = "watcher"

            def on_finished(self, record):
                print(f"watched: {record.task} {record.state}")

        watcher = Watcher()
        """), encoding="utf-8")
    (tmp_path / "plain.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text(
        '[plugins]\nmodules = ["./watcher.py:watcher", "./adapter.py", "./plain.py"]\n', encoding="utf-8")
    pm = NuvomPluginManager(tmp_path, environ={"NUVOM_LOAD_PLUGINS": ""}).load()
    status = {r.name: r for r in pm.plugin_status()}
    assert status["watcher"].loaded and status["watcher"].hooks == ["nuvom_job_finished"]  # listed before its adapter
    assert not status["./plain.py"].loaded and "no loaded plugin adapts it" in (status["./plain.py"].error or "")
    job = Job(task="docs.double")
    job.record(JobState.SUCCEEDED)
    pm.job_finished(job, job)
    assert "watched: docs.double succeeded" in capsys.readouterr().out


def test_log_handler_example_carries_the_commands_logs(tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(hook_examples()["nuvom_log_handler"], encoding="utf-8")
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken plugin')\n", encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./example.py", "./broken.py"]\n',
                                                  encoding="utf-8")
    out = run_nuvom(["runworker", "--burst", "--id", "docs-w1", "--no-manifest"], tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # a load error logged before the handler existed comes through it too, first
    assert lines[0].startswith("[WARNING] nuvom.plugins: plugin ./broken.py (.nuvom_plugins.toml) failed to load")
    assert any(line.startswith("[INFO] nuvom.cli: worker docs-w1 on sqlite, queues default") for line in lines)
    assert any(line.startswith("[INFO] nuvom.worker: worker docs-w1 ready") for line in lines)
    assert out.stderr == ""


def test_schedule_next_fire_example_decides_when_schedules_fire(tmp_path: Path) -> None:
    from nuvom_scheduler import SchedulerLoop

    (tmp_path / "example.py").write_text(hook_examples()["nuvom_schedule_next_fire"], encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./example.py"]\n', encoding="utf-8")
    app = make_app("memory", tmp_path)
    with use_app(app):
        handle = double.schedule(4, cron="@quarter-hourly")
        assert handle.next_fire_at is not None and handle.next_fire_at % 900 == 0
        first = handle.next_fire_at
        loop = SchedulerLoop(app, clock=lambda: first + 1, periodic=False)
        assert loop.run_once() == 1
        assert handle.schedule().next_fire_at == first + 900
        with pytest.raises(ValueError, match="invalid cron expression '@hourly-ish'"):
            double.schedule(4, cron="@hourly-ish")  # the scheduler plugin still checks the others


def test_schedule_task_example_wraps_every_schedule_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "example.py").write_text(hook_examples()["nuvom_schedule_task"], encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./example.py"]\n', encoding="utf-8")
    app = make_app("memory", tmp_path)
    with use_app(app):
        handle = double.options(priority=3).schedule(4, interval=60)
    assert f"scheduled docs.double as {handle.id} (interval=60)" in capsys.readouterr().out
    assert app.schedules.get_schedule(handle.id).options["priority"] == 3  # type: ignore[union-attr]


def test_the_commands_example_fails_with_the_shared_usage_code(tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(hook_examples()["nuvom_register_commands"], encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./example.py"]\n', encoding="utf-8")
    assert run_nuvom(["greet", "--name", "ada"], tmp_path).stdout.strip() == "hello ada"
    empty = run_nuvom(["greet", "--name", " "], tmp_path)
    assert empty.returncode == 2 and "--name is empty" in empty.stderr


def test_schedule_fired_example_sees_each_fire_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nuvom_scheduler import SchedulerLoop

    (tmp_path / "example.py").write_text(hook_examples()["nuvom_schedule_fired"], encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./example.py"]\n', encoding="utf-8")
    app = make_app("memory", tmp_path)
    with use_app(app):
        handle = double.options(schedule_id="docs-every-minute").schedule(4, interval=60)
        first = handle.next_fire_at
        assert first is not None
        # 150 s late: two occurrences are past the 60 s grace (missed), the third fires
        racing = SchedulerLoop(app, clock=lambda: first + 150, periodic=False)
        assert SchedulerLoop(app, clock=lambda: first + 150, periodic=False).run_once() == 1
        assert racing.run_once() == 0  # nothing left: no second call
    assert capsys.readouterr().out.count("fired: docs-every-minute -> 1 job(s), 2 missed, 0 coalesced") == 1


@pytest.mark.parametrize("hook", sorted(REGISTRATION_CONTRACTS))
def test_registration_examples_pass_plugin_test(hook: str, tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(hook_examples()[hook], encoding="utf-8")
    code, report = plugin_test("./example.py", tmp_path)
    rows = checks(report)
    assert code == 0, rows
    assert rows[REGISTRATION_CONTRACTS[hook]]["ok"]


def test_lifecycle_examples_run_in_a_real_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = hook_examples()
    modules = []
    for hook in LIFECYCLE_OUTPUT:
        (tmp_path / f"{hook}.py").write_text(examples[hook], encoding="utf-8")
        modules.append(f"./{hook}.py")
    (tmp_path / ".nuvom_plugins.toml").write_text(f"[plugins]\nmodules = {json.dumps(modules)}\n", encoding="utf-8")
    app = make_app("memory", tmp_path, sweep_interval_secs=0.1)
    _flaky_calls.clear()
    orphan = app.enqueue(Job(task="docs.double", args=[4]))
    app.queue.claim(["default"], 1, 1.0, "gone-worker")  # its worker "died": the lease expires in 1 s
    with use_app(app), running_worker(app, worker_id="docs-worker", concurrency=2):
        assert app.results.wait(orphan.id, timeout=30) is not None  # swept, then run here
        doubled = double.delay(21)
        retried = flaky.delay()
        unknown = app.enqueue(Job(task="docs.unknown"))
        assert doubled.result(timeout=30) == 42 and retried.result(timeout=30) == "ok"
        deadline = time.monotonic() + 30
        while (app.queue.get(unknown.id) or unknown).state != JobState.DEAD:
            assert time.monotonic() < deadline, "the unknown task's job was not dead-lettered"
            time.sleep(0.02)
    output = capsys.readouterr().out
    for hook, expected in LIFECYCLE_OUTPUT.items():
        assert expected in output, f"{hook}: {expected!r} not printed; got:\n{output}"


# -- the template, installed into a fresh virtual environment ----------------------------


def _venv_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str | Path], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    assert out.returncode == 0, f"{' '.join(str(c) for c in cmd)} exited {out.returncode}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.mark.slow
def test_every_rendered_kind_installs_and_passes_in_a_fresh_venv(tmp_path: Path) -> None:
    rendered = tmp_path / "rendered"
    for kind in KINDS:
        out = run_nuvom(["plugin", "scaffold", f"tpl-{kind}", "--kind", kind, "--out", str(rendered)], tmp_path)
        assert out.returncode == 0, out.stderr
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = _venv_python(env_dir)
    _run([python, "-m", "pip", "install", "-q", "--upgrade", "pip", "setuptools>=77", "wheel"], tmp_path)
    # one resolve for everything; the kernel's own dependencies come from PyPI
    projects = [rendered / f"nuvom-tpl-{kind}" for kind in KINDS]
    editable = [ROOT, ROOT / "plugins" / "nuvom-cli"] + [Path(f"{p}[test]") for p in projects]
    _run([python, "-m", "pip", "install", "-q", "--no-build-isolation",
          *[arg for path in editable for arg in ("-e", str(path))]], tmp_path, timeout=900)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUVOM_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["NUVOM_PROJECT_ROOT"] = str(tmp_path)
    for project in projects:
        _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], project, env=env)
        dist = project.name
        report = json.loads(_run([python, "-m", "nuvom_cli", "plugin", "test", dist, "--json"], tmp_path, env=env))
        assert report["ok"], report
    status = json.loads(_run([python, "-m", "nuvom_cli", "plugin", "status", "--json"], tmp_path, env=env))
    records = {r["name"]: r for r in status}
    for project in projects:
        assert records[project.name]["loaded"] and records[project.name]["error"] is None, records.get(project.name)
    assert records["nuvom-tpl-queue-backend"]["provides"] == {
        "queue_backends": ["tpl-queue-backend"], "result_backends": ["tpl-queue-backend"]}
    # the venv holds only the kernel, the CLI and the rendered plugins
    assert "nuvom-backend-sqlite" not in records
    shutil.rmtree(env_dir, ignore_errors=True)
