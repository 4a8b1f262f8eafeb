"""A job whose lease-expiry budget runs out is dead-lettered by some worker's
sweep, not by the worker that ran it (that one died).  The sweeping worker
reports it like any death: ``nuvom_job_dead`` and ``nuvom_job_finished`` once,
and the separate result store gets the dead job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support import running_worker

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState

RECORDER = '''
import json
import os

import nuvom

OUT = os.environ["NUVOM_TEST_EVENTS"]


def _write(event, job, **extra):
    with open(OUT, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"event": event, "id": job.id, "state": job.state.value, **extra}) + "\\n")


@nuvom.hookimpl
def nuvom_job_dead(job, reason):
    _write("dead", job, reason=reason)


@nuvom.hookimpl
def nuvom_job_finished(job, record):
    _write("finished", record, before=job.state.value)
'''


@pytest.mark.parametrize(("queue_backend", "result_backend"), [("sqlite", "sqlite"), ("file", "sqlite")])
def test_a_sweep_that_dead_letters_reports_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   queue_backend: str, result_backend: str) -> None:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("NUVOM_TEST_EVENTS", str(events))
    (tmp_path / "recorder.py").write_text(RECORDER, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./recorder.py"]\n', encoding="utf-8")
    app = Nuvom(root=tmp_path, environ={}, queue_backend=queue_backend, result_backend=result_backend,
                log_level="WARNING", lease_secs=5.0, sweep_interval_secs=0.2, poll_interval_secs=0.2)
    try:
        job = app.enqueue(Job(task="never.registered", max_lease_expiries=0))
        # a worker that started it and then died: its lease expires with the budget spent
        [claimed] = app.queue.claim(["default"], 1, 0.3, "killed-worker", start_now=1)
        assert claimed.id == job.id and claimed.state == JobState.RUNNING
        with running_worker(app, concurrency=1, queues=["other"]):  # sweeps, runs nothing itself
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not events.exists() or events.read_text().count("\n") < 2):
                time.sleep(0.05)
            time.sleep(0.6)  # a few more sweeps: nothing is reported twice
        lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
        assert [(e["event"], e["id"], e["state"]) for e in lines] == [
            ("dead", job.id, "dead"), ("finished", job.id, "dead")]
        assert "lease expired 1 times" in lines[0]["reason"] and lines[1]["before"] == "running"
        stored = app.results.get_result(job.id)
        assert stored is not None and stored.state == JobState.DEAD
    finally:
        app.close()
