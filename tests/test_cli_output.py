"""What the command line prints, through the real `nuvom` process: tables at 80 and
40 columns, help text, setting warnings, the worker's last line, tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support import nuvom_cmd, subprocess_env

TASKS = '''\
from nuvom import task

@task(name="out.add")
def add(a, b):
    return a + b

@task(name="out.boom")
def boom():
    raise ValueError("a problem in user code")
'''


def run(args: list[str], root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nuvom_cmd() + args, capture_output=True, text=True, cwd=root,
                          env=subprocess_env(root, **env), timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("output")
    (root / "tasks.py").write_text(TASKS, encoding="utf-8")
    wrong = json.loads(run(["enqueue", "out.add", "1", "2", "3", "--json"], root).stdout)["id"]
    boom = json.loads(run(["enqueue", "out.boom", "--json"], root).stdout)["id"]
    worker = run(["runworker", "--tasks", "tasks", "--burst"], root, NUVOM_LOG_LEVEL="INFO")
    assert worker.returncode == 0, worker.stderr
    assert run(["discover", "tasks"], root).returncode == 0
    return {"root": root, "wrong": wrong, "boom": boom, "worker": worker.stderr}


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w./-]+", text))


@pytest.mark.parametrize("width", [80, 40])
def test_tables_keep_every_word_whole_at_any_width(project: dict[str, object], width: int) -> None:
    root, wrong, boom = project["root"], str(project["wrong"]), str(project["boom"])
    assert isinstance(root, Path)
    expected = {
        ("history",): {wrong, boom, "out.add", "out.boom", "TypeError", "positional", "arguments"},
        ("plugin", "status"): {"nuvom-backend-sqlite", "nuvom-executor-process", "register_storage"},
        ("config",): {"NUVOM_SERIALIZATION_BACKEND", "NUVOM_QUEUE_BACKEND", "sqlite"},
        ("inspect", "job", wrong): {wrong, "positional", "arguments", "store_result"},
        ("stats",): {"succeeded", "failed", "default"},
        ("list", "tasks"): {"out.add", "out.boom", "tasks.py"},
    }
    for args, tokens in expected.items():
        out = run(list(args), root, COLUMNS=str(width))
        assert out.returncode == 0, out.stderr
        too_long = [line for line in out.stdout.splitlines() if len(line) > width]
        assert not too_long, f"{args} at {width} columns: {too_long}"
        missing = tokens - words(out.stdout)
        assert not missing, f"{args} at {width} columns lost {missing}:\n{out.stdout}"


def test_help_uses_upper_case_arguments_and_no_bool_metavar(tmp_path: Path) -> None:
    for args in (["status"], ["retry", "job"], ["runworker"], ["history"], ["plugin", "scaffold"]):
        out = run([*args, "--help"], tmp_path, COLUMNS="100")
        assert out.returncode == 0, out.stderr
        assert "<bool>" not in out.stdout and "{" not in out.stdout.split("\n\n")[0] + out.stdout, (args, out.stdout)
    assert "Usage: nuvom status [OPTIONS] JOB_ID" in run(["status", "--help"], tmp_path).stdout
    missing = run(["status"], tmp_path)
    assert missing.returncode == 2 and "Missing argument 'JOB_ID'" in missing.stderr


def test_a_misspelled_setting_is_one_readable_line(tmp_path: Path) -> None:
    out = run(["history"], tmp_path, NUVOM_QUEUE_BACKNED="memory")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == ["unknown setting NUVOM_QUEUE_BACKNED in environment; did you mean NUVOM_QUEUE_BACKEND?"]


def test_worker_stats_are_one_readable_line(project: dict[str, object]) -> None:
    log = str(project["worker"])
    assert "WorkerStats(" not in log
    assert re.search(r"stopped: 2 claimed, 0 succeeded, 2 failed, 0 retried, 0 dead, 0 cancelled, 0 refused$", log, re.M), log


def test_task_tracebacks_start_at_the_users_code(project: dict[str, object]) -> None:
    root = project["root"]
    assert isinstance(root, Path)
    data = json.loads(run(["inspect", "job", str(project["boom"]), "--format", "json"], root).stdout)
    tb = data["errors"][0]["traceback"].splitlines()
    assert tb[0] == "Traceback (most recent call last):"
    assert tb[1].startswith(f'  File "{root / "tasks.py"}"'), tb
    assert not any("nuvom_kernel" in line or "nuvom_executor" in line for line in tb), tb
