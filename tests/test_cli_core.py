"""`nuvom version`, `config`, `runworker` through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from support import nuvom_cmd, subprocess_env

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import JobState

TASKS = """
from nuvom import task

@task(name="cli.add")
def add(a, b):
    return a + b

@task(name="cli.boom")
def boom():
    raise ValueError("boom")
"""


def run(args: list[str], root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nuvom_cmd() + args, capture_output=True, text=True, cwd=root,
                          env=subprocess_env(root, **env), timeout=120)


def test_version(tmp_path: Path) -> None:
    out = run(["version"], tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("nuvom 1.")


def test_config_json_reports_values_and_sources(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NUVOM_BATCH_SIZE=9\n", encoding="utf-8")
    out = run(["config", "--json"], tmp_path, NUVOM_MAX_WORKERS="6")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["settings"]
    assert data["max_workers"] == {"value": 6, "source": "environment", "env": "NUVOM_MAX_WORKERS"}
    assert data["batch_size"]["value"] == 9 and data["batch_size"]["source"] == ".env"
    assert data["queue_backend"]["source"] == "default"


def test_bad_setting_exits_before_any_job_is_claimed(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS, encoding="utf-8")
    app = Nuvom(root=tmp_path, environ={})
    job_id = app.enqueue_many([])  # opens the database
    from nuvom_kernel.models import Job

    job_id = app.enqueue(Job(task="cli.add", args=[1, 2])).id
    app.close()
    out = run(["runworker", "--tasks", "tasks", "--burst"], tmp_path, NUVOM_TIMEOUT_POLICY="sometimes")
    assert out.returncode == 2
    assert "NUVOM_TIMEOUT_POLICY" in out.stderr and "'sometimes'" in out.stderr and "retry, fail, ignore" in out.stderr
    again = Nuvom(root=tmp_path, environ={})
    assert again.get_job(job_id).state == JobState.QUEUED and again.get_job(job_id).attempts == 0
    config = run(["config"], tmp_path, NUVOM_MAX_WORKERS="zero")
    assert config.returncode == 2 and "NUVOM_MAX_WORKERS" in config.stderr


def test_unknown_setting_warns_with_suggestion(tmp_path: Path) -> None:
    out = run(["config", "--json"], tmp_path, NUVOM_QUEUE_BACKNED="memory")
    assert out.returncode == 0
    assert "did you mean NUVOM_QUEUE_BACKEND" in json.dumps(json.loads(out.stdout)["warnings"])


def test_runworker_burst_runs_jobs_in_a_separate_process(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        app = Nuvom(root=tmp_path, environ={})
        from nuvom_kernel.models import Job

        ok = app.enqueue(Job(task="cli.add", args=[20, 22]))
        bad = app.enqueue(Job(task="cli.boom"))
        app.close()
        out = run(["runworker", "--tasks", "tasks", "--burst", "--concurrency", "2"], tmp_path)
        assert out.returncode == 0, out.stderr
        assert "1 succeeded, 1 failed" in out.stderr
        after = Nuvom(root=tmp_path, environ={})
        assert after.get_job(ok.id).result == 42
        failed = after.get_job(bad.id)
        assert failed.state == JobState.FAILED and failed.errors[0].message == "boom"
    finally:
        sys.path.remove(str(tmp_path))


def test_broken_task_module_is_reported_once_and_others_keep_working(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS, encoding="utf-8")
    (tmp_path / "broken_tasks.py").write_text(textwrap.dedent("""
        from nuvom import task
        import this_module_does_not_exist

        @task(name="cli.never")
        def never():
            pass
    """), encoding="utf-8")
    app = Nuvom(root=tmp_path, environ={})
    from nuvom_kernel.models import Job

    ok = app.enqueue(Job(task="cli.add", args=[1, 1]))
    orphan = app.enqueue(Job(task="cli.never"))
    app.close()
    out = run(["runworker", "--tasks", "tasks", "--tasks", "broken_tasks", "--burst"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("this_module_does_not_exist") >= 1
    assert "could not import task module broken_tasks" in out.stderr
    after = Nuvom(root=tmp_path, environ={})
    assert after.get_job(ok.id).result == 2
    dead = after.get_job(orphan.id)
    assert dead.state == JobState.DEAD and "unknown task" in (dead.reason or "")


def test_quickstart_example_runs(tmp_path: Path) -> None:
    import shutil

    example = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
    work = tmp_path / "quickstart"
    shutil.copytree(example, work, ignore=shutil.ignore_patterns(".nuvom", "__pycache__"))
    out = subprocess.run([sys.executable, "run.py"], capture_output=True, text=True, cwd=work,
                         env=subprocess_env(work), timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "add(2, 3)                                -> 5" in out.stdout
    assert "quick start passed" in out.stdout


def test_stop_command_stops_a_running_worker(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS, encoding="utf-8")
    proc = subprocess.Popen(nuvom_cmd() + ["runworker", "--tasks", "tasks", "--id", "w-stop-me"], cwd=tmp_path,
                            env=subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        app = Nuvom(root=tmp_path, environ={})
        from nuvom_kernel.models import Job
        from nuvom_kernel.task import JobHandle

        handle = JobHandle(app.enqueue(Job(task="cli.add", args=[2, 2])).id, app)
        assert handle.result(timeout=60) == 4  # the worker is up and running jobs
        bad = run(["stop", "--id", "../x"], tmp_path)
        assert bad.returncode == 2
        out = run(["stop", "--id", "w-stop-me"], tmp_path)
        assert out.returncode == 0 and "w-stop-me" in out.stdout
        assert proc.wait(timeout=60) == 0
        assert not (tmp_path / ".nuvom" / "workers" / "stop-w-stop-me").exists()  # removed by the worker
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_install_advice_keeps_extras_and_names_only_published_packages(tmp_path: Path) -> None:
    import io

    import pytest
    import typer
    from nuvom_cli.state import CliState
    from rich.console import Console

    from nuvom_kernel.errors import ComponentNotFoundError
    from nuvom_kernel.manager import NuvomPluginManager
    from nuvom_kernel.registry import ComponentRegistry

    with pytest.raises(ComponentNotFoundError) as info:
        ComponentRegistry("executors").get("process")  # nothing registered: as if not installed
    advice = 'pip install nuvom-executor-process (or pip install "nuvom[process]")'
    assert advice in str(info.value)
    err = io.StringIO()
    cli = CliState(plugins=NuvomPluginManager(tmp_path), err=Console(file=err, width=80, highlight=False))
    with pytest.raises(typer.Exit):
        cli.fail(str(info.value), 2)
    assert advice in err.getvalue()  # not eaten as Rich markup
    with pytest.raises(ComponentNotFoundError) as redis_missing:
        ComponentRegistry("queue_backends").get("redis")
    assert 'pip install nuvom-backend-redis (or pip install "nuvom[redis]")' in str(redis_missing.value)
