"""The operations commands (inspect, status, retry, cancel, history, stats,
enqueue, purge) through the typer app on every backend, and the FAQ's commands
through the real console entry point in a separate process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nuvom_cli.app import build_app
from nuvom_cli.state import state
from support import nuvom_cmd, running_worker, subprocess_env
from typer.testing import CliRunner

from nuvom import task
from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState, WorkerInfo, now
from nuvom_kernel.task import JobHandle


@task(name="cliops.add")
def add(a: int, b: int) -> int:
    return a + b


@task(name="cliops.boom", retries=1, retry_delay_secs=0)
def boom() -> None:
    raise ValueError("boom from cliops")


class Cli:
    """Runs `nuvom ...` in this process against ``app`` (any backend, memory too)."""

    def __init__(self, app: Nuvom) -> None:
        self.app = app
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> object:
        cli = build_app(root=self.app.root)
        state().set_app(self.app)
        return self.runner.invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def cli(app: Nuvom) -> Iterator[Cli]:
    yield Cli(app)


def _finish(app: Nuvom, *handles: JobHandle[object]) -> None:
    with running_worker(app, burst=True, concurrency=2):
        for h in handles:
            h.wait(30)


def test_inspect_job_table_json_raw(app: Nuvom, cli: Cli) -> None:
    handle = boom.delay()
    _finish(app, handle)
    out = cli("inspect", "job", handle.id)
    assert out.exit_code == 0, out.output
    for text in ("failed", "cliops.boom", "2 of 2 allowed", "Attempts", "History", "attempt 1:",
                 "attempt 2:", "ValueError", "boom from cliops", "Traceback", "durations"):
        assert text in out.stdout, text
    data = json.loads(cli("inspect", "job", handle.id, "--format", "json").stdout)
    assert data["id"] == handle.id and data["state"] == "failed" and len(data["errors"]) == 2
    assert data["errors"][1]["traceback"].startswith("Traceback")
    assert data["durations"]["total_secs"] >= 0 and len(data["attempt_details"]) == 2
    assert Job.model_validate(data).errors[0].message == "boom from cliops"
    raw = cli("inspect", "job", handle.id, "-f", "RAW")
    assert raw.exit_code == 0 and '"token"' in raw.stdout and "--- attempt 2: builtins.ValueError" in raw.stdout


def test_status_retry_cancel(app: Nuvom, cli: Cli) -> None:
    handle = boom.delay()
    _finish(app, handle)
    status = cli("status", handle.id)
    assert status.exit_code == 0 and "failed" in status.stdout and "boom from cliops" in status.stdout
    out = cli("retry", "job", handle.id)
    assert out.exit_code == 0 and "queued again: attempt 3" in out.stdout
    refused = cli("retry", "job", handle.id)
    assert refused.exit_code == 2 and "is queued" in refused.stderr
    assert json.loads(cli("status", handle.id, "--json").stdout)["state"] == "queued"
    cancelled = cli("cancel", "job", handle.id)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
    again = cli("cancel", "job", handle.id, "--json")
    assert again.exit_code == 2 and "already cancelled" in again.stderr
    ok = add.delay(2, 3)
    _finish(app, ok)
    assert "result: 5" in cli("status", ok.id).stdout
    rerun = cli("retry", "job", ok.id, "--json")
    assert rerun.exit_code == 0, rerun.output
    copy = json.loads(rerun.stdout)
    assert copy["rerun_of"] == ok.id and copy["id"] != ok.id and copy["state"] == "queued"
    assert json.loads(cli("status", ok.id, "--json").stdout)["state"] == "succeeded"
    assert "enqueued a copy as job" in cli("retry", "job", ok.id).stdout
    missing = cli("status", "no-such-job")
    assert missing.exit_code == 3 and "no job with id 'no-such-job'" in missing.stderr


@pytest.mark.parametrize("bad", ["../x", "..\\x", "CON", "a/b", "a\x00b", "x" * 65])
def test_unsafe_ids_exit_2_before_the_backend(bad: str, memory_app: Nuvom) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"backend reached: {name}")

    app = Nuvom(root=memory_app.root, environ={}, queue=Exploding(), results=Exploding())  # type: ignore[arg-type]
    cli = Cli(app)
    for args in (["inspect", "job", bad], ["status", bad], ["retry", "job", bad], ["cancel", "job", bad]):
        out = cli(*args)
        assert out.exit_code == 2, (args, out.output)
        assert "invalid job id" in out.stderr


def test_retry_jobs_with_confirmation(app: Nuvom, cli: Cli) -> None:
    handles = [boom.delay() for _ in range(3)]
    _finish(app, *handles)
    declined = cli("retry", "jobs", "--state", "failed", input="n\n")
    assert declined.exit_code == 0 and "Retry 3 failed job(s)?" in declined.stdout
    assert {h.status() for h in handles} == {JobState.FAILED}
    out = cli("retry", "jobs", "--state", "failed", "--task", "cliops.boom", "--yes")
    assert out.exit_code == 0 and "retried 3 job(s)" in out.stdout
    assert {h.status() for h in handles} == {JobState.QUEUED}
    assert "no failed jobs to retry" in cli("retry", "jobs", "--yes").stdout
    assert cli("retry", "jobs", "--state", "running", "--yes").exit_code == 2


def test_history_filters_pages_and_0_11_spelling(app: Nuvom, cli: Cli) -> None:
    ok = [add.delay(i, 1) for i in range(3)]
    bad = boom.delay()
    _finish(app, *ok, bad)
    pending = add.delay(0, 0)
    rows = json.loads(cli("history", "--json").stdout)
    assert [r["id"] for r in rows] == [pending.id, bad.id] + [h.id for h in reversed(ok)]
    page = json.loads(cli("history", "--limit", "2", "--offset", "1", "--json").stdout)
    assert [r["id"] for r in page] == [bad.id, ok[2].id]
    legacy = cli("history", "recent", "--limit", "10", "--status", "FAILED")
    assert legacy.exit_code == 0 and bad.id in legacy.stdout and ok[0].id not in legacy.stdout
    assert [r["id"] for r in json.loads(cli("history", "recent", "--status", "pending", "--json").stdout)] == [pending.id]
    assert len(json.loads(cli("history", "--state", "succeeded", "--task", "cliops.add", "--since", "1h",
                              "--json").stdout)) == 3
    assert json.loads(cli("history", "--since", "+1h", "--json").stdout) == []
    wrong = cli("history", "--state", "done")
    assert wrong.exit_code == 2 and "unknown job state 'done'" in wrong.stderr
    assert cli("history", "--since", "yesterday").exit_code == 2


def test_history_pages_with_a_cursor_and_searches(app: Nuvom, cli: Cli) -> None:
    handles = [add.delay(i, 1) for i in range(5)]
    newest_first = [h.id for h in reversed(handles)]
    first = cli("history", "--limit", "2", "--json")
    assert [r["id"] for r in json.loads(first.stdout)] == newest_first[:2]
    hint = first.stderr.strip()
    assert hint.startswith("more: add --cursor ")
    cursor = hint.removeprefix("more: add --cursor ")
    second = cli("history", "--limit", "2", "--cursor", cursor, "--json")
    assert [r["id"] for r in json.loads(second.stdout)] == newest_first[2:4]
    table = cli("history", "--limit", "2", "--cursor", cursor)
    assert table.exit_code == 0 and "more: add --cursor" in table.stderr
    found = json.loads(cli("history", "--search", handles[3].id[:10], "--json").stdout)
    assert [r["id"] for r in found] == [handles[3].id]
    assert json.loads(cli("history", "--search", "CLIOPS.ADD", "--json").stdout)  # the task name, any case
    bad = cli("history", "--cursor", "nonsense")
    assert bad.exit_code == 2 and "invalid cursor" in bad.stderr


def test_stats_table_json_and_watch(app: Nuvom, cli: Cli) -> None:
    done = add.delay(1, 1)
    _finish(app, done)
    add.options(queue="mail").delay(1, 2)
    app.queue.register_worker(WorkerInfo(id="ghost-1", host="h", pid=1, queues=["default"], concurrency=1,
                                         executor="thread", started_at=now() - 60,
                                         heartbeat_at=now() - 2 * app.settings.lease_secs))
    data = json.loads(cli("stats", "--json").stdout)
    assert data["queues"]["mail"]["queued"] == 1 and data["states"]["succeeded"] == 1
    assert {w["id"]: w["status"] for w in data["workers"]}["ghost-1"] == "stale"
    table = cli("stats")
    assert table.exit_code == 0
    for text in ("mail", "ghost-1", "stale", "oldest queued job waiting", "1 finished in the last 60s"):
        assert text in table.stdout, text
    watched = cli("stats", "--watch", "--iterations", "2", "--interval", "0.1", "--json")
    assert watched.exit_code == 0 and watched.stdout.count('"throughput"') == 2


def test_enqueue_by_name(app: Nuvom, cli: Cli) -> None:
    out = cli("enqueue", "cliops.add", "40", "2", "--queue", "q2", "--priority", "3")
    assert out.exit_code == 0, out.output
    job = app.get_job(out.stdout.strip())
    assert (job.args, job.queue, job.priority, job.state) == ([40, 2], "q2", 3, JobState.QUEUED)
    mixed = json.loads(cli("enqueue", "cliops.add", "hello", '"7"', "--kwargs", '{"b": [1]}', "--eta", "+1h",
                           "--json").stdout)
    stored = app.get_job(mixed["id"])
    assert stored.args == ["hello", "7"] and stored.kwargs == {"b": [1]} and stored.state == JobState.SCHEDULED
    with running_worker(app, burst=True, concurrency=1, queues=["q2"]):
        assert JobHandle(job.id, app).result(30) == 42
    assert cli("enqueue", "cliops.add", "--kwargs", "[1]").exit_code == 2
    assert cli("enqueue", "cliops.add", "--kwargs", "{oops").exit_code == 2
    assert cli("enqueue", "cliops.add", "--queue", "../q").exit_code == 2
    assert cli("enqueue", "cliops.add", "--eta", "someday").exit_code == 2


def test_purge_confirms_and_keeps_live_jobs(app: Nuvom, cli: Cli) -> None:
    done = add.delay(1, 1)
    _finish(app, done)
    live = add.delay(2, 2)
    declined = cli("purge", input="n\n")
    assert declined.exit_code == 0 and "nothing deleted" in declined.stderr
    assert cli("purge", "--state", "running", "--yes").exit_code == 2
    assert json.loads(cli("purge", "--older-than", "7d", "--yes", "--json").stdout) == {"deleted": 0}
    out = cli("purge", "--state", "succeeded", input="y\n")
    assert out.exit_code == 0 and "deleted 1 job(s)" in out.stdout
    assert [j.id for j in app.list_jobs()] == [live.id]


# -- the FAQ's commands, exactly as written, in a separate process ----------------------

TASKS = """
from nuvom import task

@task(name="faq_fail", retries=0)
def faq_fail(x):
    raise RuntimeError(f"bad {x}")

@task
def add(a, b):
    return a + b
"""


def _run(args: list[str], root: Path, backend: str) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(root, NUVOM_QUEUE_BACKEND=backend, NUVOM_RESULT_BACKEND=backend, NUVOM_LOG_LEVEL="WARNING")
    return subprocess.run(nuvom_cmd() + args, capture_output=True, text=True, cwd=root, env=env, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", "file"])
def test_faq_commands_in_a_separate_process(backend: str, tmp_path: Path) -> None:
    (tmp_path / "faq_tasks.py").write_text(TASKS, encoding="utf-8")
    enq = _run(["enqueue", "faq_fail", "7"], tmp_path, backend)
    assert enq.returncode == 0, enq.stderr
    job_id = enq.stdout.strip()
    work = _run(["runworker", "--tasks", "faq_tasks", "--burst"], tmp_path, backend)
    assert work.returncode == 0 and "1 failed" in work.stderr, work.stderr

    inspect = _run(["inspect", "job", job_id], tmp_path, backend)
    assert inspect.returncode == 0 and "RuntimeError" in inspect.stdout and "bad 7" in inspect.stdout
    history = _run(["history", "recent", "--limit", "10", "--status", "FAILED"], tmp_path, backend)
    assert history.returncode == 0 and job_id in history.stdout, history.stderr
    retry = _run(["retry", "job", job_id], tmp_path, backend)
    assert retry.returncode == 0, retry.stderr
    sdk = subprocess.run(nuvom_cmd()[:1] + ["-c", f"from nuvom.sdk import get_job; print(get_job({job_id!r}).state)"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env=subprocess_env(tmp_path, NUVOM_QUEUE_BACKEND=backend, NUVOM_RESULT_BACKEND=backend))
    assert sdk.stdout.strip() == "queued", sdk.stderr
    assert _run(["runworker", "--tasks", "faq_tasks", "--burst"], tmp_path, backend).returncode == 0
    python = subprocess.run(
        nuvom_cmd()[:1] + ["-c", f"from nuvom.sdk import retry_job\nretry_job({job_id!r})"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env=subprocess_env(tmp_path, NUVOM_QUEUE_BACKEND=backend, NUVOM_RESULT_BACKEND=backend))
    assert python.returncode == 0, python.stderr
    status = _run(["status", job_id, "--json"], tmp_path, backend)
    assert json.loads(status.stdout)["state"] == "queued" and json.loads(status.stdout)["attempts"] == 2
    unsafe = _run(["inspect", "job", "../x"], tmp_path, backend)
    assert unsafe.returncode == 2 and "invalid job id" in unsafe.stderr
    missing = _run(["inspect", "job", "nothere"], tmp_path, backend)
    assert missing.returncode == 3

