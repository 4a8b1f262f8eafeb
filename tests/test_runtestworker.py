"""`nuvom runtestworker run`: one job through the worker's execution path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from nuvom_cli.app import build_app
from nuvom_cli.state import state
from support import nuvom_cmd, subprocess_env
from typer.testing import CliRunner

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import JobState

TASKS = """
import os
from nuvom import task, current_job

def _log(event):  # the module is imported once per test process: the log path comes from the test
    with open(os.environ["RTW_LOG"], "a") as f:
        f.write(event + "\\n")

@task(name="rtw.add", before_job=lambda: _log("before"), after_job=lambda value: _log(f"after {value}"))
def add(a, b):
    return a + b

@task(name="rtw.flaky", retries=2, retry_delay_secs=0)
def flaky():
    if current_job().attempt < 2:
        raise ConnectionError("first try fails")
    return "ok on attempt %d" % current_job().job.attempts

@task(name="rtw.boom", retry_delay_secs=0, on_error=lambda exc: _log(f"error {exc}"))
def boom():
    raise ValueError("always")

@task(name="rtw.slow", timeout_secs=0.2)
def slow():
    import time
    job = current_job()
    while not job.is_cancelled():  # set at the deadline; the thread then ends by itself
        time.sleep(0.01)
    return "stopped"
"""


@pytest.fixture(autouse=True)
def hook_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RTW_LOG", str(tmp_path / "hooks.log"))
    return tmp_path / "hooks.log"


def _project(tmp_path: Path) -> Path:
    (tmp_path / "rtw_tasks.py").write_text(TASKS, encoding="utf-8")
    return tmp_path


def _invoke(app: Nuvom, *args: str) -> object:
    cli = build_app(root=app.root)
    state().set_app(app)
    return CliRunner().invoke(cli, ["runtestworker", "run", *args], catch_exceptions=False)


def flat(text: str) -> str:
    """Panel text without borders and line wrapping."""
    return " ".join(text.replace("│", " ").split())


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_legacy_job_file_runs_with_hooks_and_stores_the_result(app: Nuvom) -> None:
    root = _project(app.root)
    job_file = _write(root / "myjob.json", {"func_name": "rtw.add", "args": [1, 2], "kwargs": {}, "timeout_secs": 5,
                                             "retries": 1})
    out = _invoke(app, "--job-file", str(job_file), "--task-module", "rtw_tasks.py")
    assert out.exit_code == 0, out.output
    assert "SUCCEEDED" in out.stdout and "result: 3" in out.stdout
    assert (root / "hooks.log").read_text().split("\n")[:2] == ["before", "after 3"]
    [job] = app.list_jobs(task="rtw.add")
    assert job.state == JobState.SUCCEEDED and job.result == 3 and job.queue.startswith("testworker-")
    assert (job.timeout_secs, job.max_retries) == (5, 1)


def test_retries_run_and_every_attempt_is_recorded(app: Nuvom) -> None:
    root = _project(app.root)
    out = _invoke(app, str(_write(root / "j.json", {"task": "rtw.flaky"})), "--task-module", "rtw_tasks", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["state"] == "succeeded" and data["result"] == "ok on attempt 2" and data["attempts"] == 2
    assert data["errors"][0]["type"] == "builtins.ConnectionError"


def test_failure_exits_1_and_shows_the_traceback(app: Nuvom) -> None:
    root = _project(app.root)
    out = _invoke(app, str(_write(root / "j.json", {"func_name": "rtw.boom", "retries": 1})), "-m", "rtw_tasks")
    assert out.exit_code == 1
    assert "FAILED" in out.stdout and "attempt 2: builtins.ValueError: always" in out.stdout
    assert "Traceback" in out.stdout
    assert (root / "hooks.log").read_text().count("error always") == 2


def test_timeout_is_enforced(app: Nuvom) -> None:
    root = _project(app.root)
    out = _invoke(app, str(_write(root / "j.json", {"func_name": "rtw.slow"})), "-m", "rtw_tasks", "--json")
    assert out.exit_code == 1, out.output
    data = json.loads(out.stdout)
    assert data["state"] == "failed" and data["errors"][0]["timed_out"] is True


def test_exported_job_is_run_again_as_a_fresh_job(app: Nuvom) -> None:
    root = _project(app.root)
    first = _invoke(app, str(_write(root / "j.json", {"func_name": "rtw.add", "args": [2, 2]})), "-m", "rtw_tasks")
    assert first.exit_code == 0, first.output
    [original] = app.list_jobs(task="rtw.add")
    cli = build_app(root=app.root)
    state().set_app(app)
    exported = CliRunner().invoke(cli, ["inspect", "job", original.id, "--format", "json"]).stdout
    (root / "exported.json").write_text(exported, encoding="utf-8")
    again = _invoke(app, "--job-file", str(root / "exported.json"), "-m", "rtw_tasks", "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["id"] != original.id and data["result"] == 4 and data["attempts"] == 1
    assert [h["state"] for h in data["history"]] == ["queued", "running", "succeeded"]
    assert app.get_job(original.id).attempts == 1  # the original is untouched


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "invalid JSON"),
    ('{"args": [1]}', "no 'func_name'"),
    ('{"func_name": "rtw.nope"}', "unknown task 'rtw.nope'"),
    ('{"func_name": "rtw.add", "args": {"a": 1}}', "'args'"),
    ("[1, 2]", "must hold a JSON object"),
])
def test_bad_job_files_exit_1_with_a_clear_message(memory_app: Nuvom, content: str, message: str) -> None:
    root = _project(memory_app.root)
    (root / "bad.json").write_text(content, encoding="utf-8")
    out = _invoke(memory_app, str(root / "bad.json"), "-m", "rtw_tasks")
    assert out.exit_code == 1 and message in flat(out.stderr), out.output


def test_usage_errors_exit_2(memory_app: Nuvom) -> None:
    assert _invoke(memory_app).exit_code == 2
    assert _invoke(memory_app, "missing.json").exit_code == 2
    root = _project(memory_app.root)
    a, b = _write(root / "a.json", {}), _write(root / "b.json", {})
    assert _invoke(memory_app, str(a), "--job-file", str(b)).exit_code == 2


def test_no_manifest_says_what_to_do(memory_app: Nuvom) -> None:
    root = _project(memory_app.root)
    out = _invoke(memory_app, str(_write(root / "j.json", {"func_name": "rtw.unlisted"})))
    assert out.exit_code == 1 and "run nuvom discover tasks or pass --task-module" in flat(out.stderr)


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_faq_command_with_the_manifest_in_a_separate_process(backend: str, tmp_path: Path) -> None:
    """`nuvom discover tasks` then `nuvom runtestworker run --job-file myjob.json`, as the FAQ says."""
    (tmp_path / "mytasks.py").write_text("from nuvom import task\n\n@task\ndef add(a, b):\n    return a + b\n",
                                         encoding="utf-8")
    _write(tmp_path / "myjob.json", {"func_name": "add", "args": [1, 2], "kwargs": {}, "timeout_secs": 5, "retries": 1})
    env = subprocess_env(tmp_path, NUVOM_QUEUE_BACKEND=backend, NUVOM_RESULT_BACKEND=backend)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(nuvom_cmd() + list(args), capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=120)

    assert run("discover", "tasks").returncode == 0
    out = run("runtestworker", "run", "--job-file", "myjob.json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCEEDED" in out.stdout and "result: 3" in out.stdout
    positional = run("runtestworker", "run", "myjob.json", "--json")
    assert positional.returncode == 0 and json.loads(positional.stdout)["result"] == 3
    history = json.loads(run("history", "--task", "add", "--json").stdout)
    assert len(history) == 2 and {r["state"] for r in history} == {"succeeded"}
