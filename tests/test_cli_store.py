"""No silent split stores: the project root found like git, the memory backend's
limits said out loud, and `nuvom status` saying when nobody runs a queued job."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from support import nuvom_cmd, subprocess_env


def run(args: list[str], cwd: Path, *, root: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = subprocess_env(root or cwd, **env)
    if root is None:
        del environ["NUVOM_PROJECT_ROOT"]  # as a user runs it: the root is found from the working directory
    return subprocess.run(nuvom_cmd() + args, capture_output=True, text=True, cwd=cwd, env=environ, timeout=120)


def test_the_root_is_the_nearest_directory_up_with_pyproject_or_nuvom(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deeper = project / "src" / "app"
    deeper.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'app'\n", encoding="utf-8")
    config = json.loads(run(["config", "--json"], deeper).stdout)
    assert config["root"] == str(project.resolve())
    assert config["root_source"] == "nearest pyproject.toml up from the working directory"
    job = run(["enqueue", "some.task"], deeper)
    assert job.returncode == 0, job.stderr
    assert (project / ".nuvom").is_dir() and not (deeper / ".nuvom").exists()  # one store, not sub/.nuvom
    # the nearest marker wins: a .nuvom/ below the pyproject.toml is its own project
    inner = project / "tools"
    (inner / ".nuvom").mkdir(parents=True)
    (inner / "bin").mkdir()
    assert json.loads(run(["config", "--json"], inner / "bin").stdout)["root"] == str(inner.resolve())
    # NUVOM_PROJECT_ROOT still decides when set
    forced = json.loads(run(["config", "--json"], deeper, root=inner).stdout)
    assert forced["root"] == str(inner.resolve()) and forced["root_source"] == "environment"


def test_the_memory_backend_refuses_enqueue_and_warns_a_separate_worker(tmp_path: Path) -> None:
    enqueue = run(["enqueue", "some.task"], tmp_path, root=tmp_path, NUVOM_QUEUE_BACKEND="memory")
    assert enqueue.returncode == 2 and "would vanish" in enqueue.stderr
    worker = run(["runworker", "--burst"], tmp_path, root=tmp_path, NUVOM_QUEUE_BACKEND="memory")
    assert worker.returncode == 0, worker.stderr
    assert "warning: the memory backend keeps jobs inside this worker process" in worker.stderr
    assert "invisible" in worker.stderr
    sqlite = run(["runworker", "--burst"], tmp_path, root=tmp_path)
    assert "memory backend" not in sqlite.stderr


def test_status_of_a_waiting_job_says_whether_a_worker_is_alive(tmp_path: Path) -> None:
    job_id = run(["enqueue", "some.task", "--queue", "held", "--eta", "1h"], tmp_path, root=tmp_path).stdout.strip()
    nobody = run(["status", job_id], tmp_path, root=tmp_path)
    assert nobody.returncode == 0
    assert "note: no worker consuming queue 'held' has heartbeated on this store" in nobody.stderr
    assert "nuvom runworker -q held" in nobody.stderr
    assert json.loads(run(["status", job_id, "--json"], tmp_path, root=tmp_path).stdout)["live_workers"] == 0
    worker = subprocess.Popen(nuvom_cmd() + ["runworker", "-q", "held"], cwd=tmp_path, env=subprocess_env(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while json.loads(run(["status", job_id, "--json"], tmp_path, root=tmp_path).stdout)["live_workers"] != 1:
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.2)
        alive = run(["status", job_id], tmp_path, root=tmp_path)
        assert "scheduled" in alive.stdout and "note:" not in alive.stderr
    finally:
        run(["stop", "--all"], tmp_path, root=tmp_path)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert worker.returncode == 0
