"""A real `nuvom runworker` with the plugin on: every line it writes is JSON, and says what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState

TASKS = '''
import time
from pathlib import Path

from nuvom import task


@task(name="jl.add")
def add(a, b):
    return a + b


@task(name="jl.flaky", retries=1, retry_delay_secs=0)
def flaky(marker):
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise ConnectionError("first attempt fails")
    return "ok"


@task(name="jl.boom")
def boom():
    raise ValueError("bad input")


@task(name="jl.slow", timeout_secs=1)
def slow():
    time.sleep(60)
'''


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_PROJECT_ROOT=str(root), PYTHONUNBUFFERED="1", NUVOM_LOGS_JSON__ENABLED="1",
               NUVOM_LOGS_JSON__FIELDS="service=billing,region=eu")
    env.update(extra)
    return env


def nuvom(root: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nuvom_cli", *args], capture_output=True, text=True,
                          cwd=root, env=env_for(root, **extra_env), timeout=180)


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object with the fields every line has."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"line {number} is not JSON ({exc}): {line!r}\n--- all output:\n{text}") from None
        assert isinstance(obj, dict), line
        for name in ("timestamp", "level", "event", "message", "logger"):
            assert name in obj, f"line {number} has no {name}: {line}"
        stamp = datetime.strptime(obj["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 3600
        assert obj["level"] in {"debug", "info", "warning", "error", "critical"}
        assert obj["service"] == "billing" and obj["region"] == "eu", line
        lines.append(obj)
    return lines


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jltasks.py").write_text(textwrap.dedent(TASKS), encoding="utf-8")
    return tmp_path


def test_worker_writes_one_json_object_per_line_for_every_event(project: Path) -> None:
    # a plugin that cannot load: its error must come out as JSON too
    (project / "broken_plugin.py").write_text("raise RuntimeError('no such luck')\n", encoding="utf-8")
    (project / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./broken_plugin.py"]\n', encoding="utf-8")

    enq = nuvom(project, "enqueue", "jl.add", "40", "2")
    assert enq.returncode == 0, enq.stderr
    # a short command's own notes stay text; its log records are JSON
    produced = parse_lines("\n".join(line for line in enq.stderr.splitlines() if line.startswith("{")))
    enqueued = [e for e in produced if e["event"] == "job.enqueued"]
    first_id = enq.stdout.strip().split()[-1]
    assert [(e["job_id"], e["task"], e["queue"], e["state"]) for e in enqueued] == \
        [(first_id, "jl.add", "default", "queued")]
    assert [e["plugin"] for e in produced if e["event"] == "plugin.load_error"] == ["./broken_plugin.py"]

    app = Nuvom(root=project, environ={})
    jobs = {
        "add": app.enqueue(Job(task="jl.add", args=[1, 2])),
        "flaky": app.enqueue(Job(task="jl.flaky", args=[str(project / "marker")], max_retries=1)),
        "boom": app.enqueue(Job(task="jl.boom")),
        "slow": app.enqueue(Job(task="jl.slow", timeout_secs=1.0)),
    }
    app.close()
    ids = {job.id: name for name, job in jobs.items()}
    ids[first_id] = "first"

    out = nuvom(project, "runworker", "--burst", "--executor", "process", "-c", "2",
                "--tasks", "jltasks", "--no-manifest")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    lines = parse_lines(out.stderr)
    events = [e["event"] for e in lines]
    worker_id = next(e["worker_id"] for e in lines if e["event"] == "worker.ready")

    # worker events, in order
    order = [e for e in events if e in ("worker.ready", "worker.stopping", "worker.stopped")]
    assert order == ["worker.ready", "worker.stopping", "worker.stopped"], events
    assert events.count("plugin.load_error") == 1
    stopped = next(e for e in lines if e["event"] == "worker.stopped")
    assert (stopped["succeeded"], stopped["failed"], stopped["retried"]) == (3, 2, 1)

    job_events = [e for e in lines if e["event"].startswith("job.")]
    by_job: dict[str, list[str]] = {}
    for e in job_events:
        assert e["job_id"] in ids, e
        assert e["worker_id"] == worker_id and e["queue"] == "default", e
        by_job.setdefault(ids[e["job_id"]], []).append(e["event"])
    assert by_job == {
        "first": ["job.started", "job.succeeded"],
        "add": ["job.started", "job.succeeded"],
        "flaky": ["job.started", "job.retrying", "job.started", "job.succeeded"],
        "boom": ["job.started", "job.failed"],
        "slow": ["job.started", "job.failed"],
    }
    assert Counter(e["event"] for e in job_events)["job.started"] == 6

    def one(name: str, event: str, attempt: int = 1) -> dict[str, Any]:
        [found] = [e for e in job_events if ids[e["job_id"]] == name and e["event"] == event
                   and e["attempt"] == attempt]
        return found

    ok = one("add", "job.succeeded")
    assert (ok["task"], ok["state"], ok["level"]) == ("jl.add", "succeeded", "info")
    assert isinstance(ok["duration"], float) and ok["duration"] >= 0
    assert "error_type" not in ok

    retry = one("flaky", "job.retrying")
    assert (retry["state"], retry["level"], retry["error_type"]) == ("queued", "warning", "builtins.ConnectionError")
    assert retry["error_message"] == "first attempt fails" and retry["delay"] == 0
    assert "ConnectionError" in retry["traceback"] and "\n" in retry["traceback"]
    assert one("flaky", "job.started", attempt=2)["state"] == "running"
    assert one("flaky", "job.succeeded", attempt=2)["state"] == "succeeded"

    failed = one("boom", "job.failed")
    assert (failed["state"], failed["level"], failed["error_type"], failed["error_message"]) == \
        ("failed", "error", "builtins.ValueError", "bad input")
    assert "raise ValueError" in failed["traceback"]

    timed_out = one("slow", "job.failed")
    assert timed_out["timed_out"] is True and "timed out" in timed_out["error_message"]
    assert timed_out["duration"] >= 1.0

    after = Nuvom(root=project, environ={})
    assert after.get_job(jobs["slow"].id).state == JobState.FAILED
    assert after.get_job(jobs["flaky"].id).result == "ok"
    after.close()


def test_plugin_status_lists_the_plugin(project: Path) -> None:
    out = nuvom(project, "plugin", "status", "--json")
    assert out.returncode == 0, out.stderr
    [record] = [p for p in json.loads(out.stdout) if p["name"] == "nuvom-logs-json"]
    assert record["loaded"] and record["error"] is None
    assert record["distribution"] == "nuvom-logs-json" and record["module"] == "nuvom_logs_json.plugin"
    assert {"nuvom_log_handler", "nuvom_job_finished", "nuvom_register_settings"} <= set(record["hooks"])


def test_json_to_a_file_and_text_logs_when_disabled(project: Path) -> None:
    app = Nuvom(root=project, environ={})
    app.enqueue(Job(task="jl.add", args=[1, 2]))
    app.close()
    out = nuvom(project, "runworker", "--burst", "--tasks", "jltasks", "--no-manifest",
                NUVOM_LOGS_JSON__PATH="logs/worker.jsonl")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = parse_lines((project / "logs" / "worker.jsonl").read_text(encoding="utf-8"))
    assert [e["event"] for e in lines if e["event"] != "log"] == \
        ["worker.starting", "worker.ready", "job.started", "job.succeeded", "worker.stopping", "worker.stopped"]

    app = Nuvom(root=project, environ={})
    app.enqueue(Job(task="jl.add", args=[1, 2]))
    app.close()
    plain = nuvom(project, "runworker", "--burst", "--tasks", "jltasks", "--no-manifest",
                  NUVOM_LOGS_JSON__ENABLED="0")
    assert plain.returncode == 0, plain.stderr
    assert "{" not in plain.stderr and "ready: queues=default" in plain.stderr
    assert "job.started" not in plain.stderr and "started, attempt" not in plain.stderr


def test_a_bad_setting_stops_the_command_naming_it(project: Path) -> None:
    out = nuvom(project, "runworker", "--burst", NUVOM_LOGS_JSON__LEVEL="chatty")
    assert out.returncode == 2
    message = " ".join(out.stderr.split())
    assert "NUVOM_LOGS_JSON__LEVEL='chatty'" in message and "one of DEBUG, INFO" in message
    out = nuvom(project, "runworker", "--burst", NUVOM_LOGS_JSON__FIELDS="event=x")
    assert out.returncode == 2 and "event is one of Nuvom's own fields" in " ".join(out.stderr.split())
