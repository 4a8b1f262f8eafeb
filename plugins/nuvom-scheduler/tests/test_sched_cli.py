"""The commands, as a user runs them: the 0.11 quick start's step 4 verbatim,
`nuvom schedules ...` and `nuvom runscheduler`, on the default SQLite backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

TASKS = '''
from nuvom.task import task

@task(retries=2, retry_delay_secs=5, timeout_secs=3, store_result=True)
def add(x, y):
    return x + y

@task(cron="30 9 * * *", timezone="America/New_York")
def morning_report():
    return "report"
'''

# Nuvom 0.11's quick start, step 4, as published (less one trailing space)
STEP_4 = '''
from datetime import timedelta, datetime, timezone
from tasks import add

# Run at a specific time (2038 iykyk)
add.schedule(5, 7, at=datetime(2038, 1, 19, 3, 14, 7, tzinfo=timezone.utc))

# Run once after 30 seconds
add.schedule(5, 7, in_=timedelta(seconds=30))

# Run every 5 minutes (interval scheduling)
add.schedule(2, 3, interval=300)

# Cron-style: every day at midnight UTC
add.schedule(1, 2, cron="0 0 * * *")
'''


def env(root: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    e.update(NUVOM_PROJECT_ROOT=str(root), PYTHONUNBUFFERED="1")
    return e


def nuvom(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nuvom_cli", *args], cwd=root, env=env(root), capture_output=True,
                          text=True, timeout=120)


def test_quick_start_step_4_then_the_schedule_commands(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS, encoding="utf-8")
    (tmp_path / "step4.py").write_text(STEP_4, encoding="utf-8")
    made = subprocess.run([sys.executable, "step4.py"], cwd=tmp_path, env=env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert nuvom(tmp_path, "discover", "tasks").returncode == 0

    # runscheduler stores the periodic task found by discovery (no import) and fires what is due
    once = nuvom(tmp_path, "runscheduler", "--once", "--poll", "0.5", "--batch", "10", "--jitter", "0.1")
    assert once.returncode == 0, once.stderr
    listed = json.loads(nuvom(tmp_path, "schedules", "list", "--json").stdout)
    assert len(listed) == 5
    by_task = {(s["task"], s["kind"]): s for s in listed}
    report = by_task[("morning_report", "cron")]
    assert report["id"] == "periodic.morning_report" and report["origin"] == "code"
    # the next fire time shown in the schedule's own zone
    assert report["next_fire_local"][11:19] == "09:30:00" and report["next_fire_local"][19:] in ("-05:00", "-04:00")
    at = [s for s in listed if s["kind"] == "at" and s["at"] == 2147483647.0][0]
    assert at["next_fire_local"] == "2038-01-19T03:14:07+00:00"

    table = nuvom(tmp_path, "schedules", "list")
    assert table.returncode == 0 and "morning_report" in table.stdout and "UTC" in table.stdout
    shown = nuvom(tmp_path, "schedules", "show", report["id"], "--json")
    assert json.loads(shown.stdout)["cron"] == "30 9 * * *"

    paused = nuvom(tmp_path, "schedules", "pause", report["id"], "--json")
    assert json.loads(paused.stdout)["state"] == "paused"
    assert json.loads(nuvom(tmp_path, "schedules", "list", "--state", "paused", "--json").stdout)[0]["id"] == report["id"]
    assert json.loads(nuvom(tmp_path, "schedules", "resume", report["id"], "--json").stdout)["state"] == "active"
    assert json.loads(nuvom(tmp_path, "schedules", "cancel", report["id"], "--json").stdout)["state"] == "cancelled"
    again = nuvom(tmp_path, "schedules", "resume", report["id"])
    assert again.returncode == 2 and "never fires again" in again.stderr
    missing = nuvom(tmp_path, "schedules", "show", "no-such-schedule")
    assert missing.returncode == 3 and "no schedule with id 'no-such-schedule'" in missing.stderr


def test_runscheduler_fires_a_due_schedule_and_a_worker_runs_it(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS, encoding="utf-8")
    code = textwrap.dedent('''
        from datetime import timedelta
        from tasks import add
        print(add.schedule(20, 22, in_=timedelta(0)).id)
    ''')
    made = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    sid = made.stdout.strip()
    assert nuvom(tmp_path, "runscheduler", "--once").returncode == 0
    shown = json.loads(nuvom(tmp_path, "schedules", "show", sid, "--json").stdout)
    assert shown["state"] == "done" and shown["fire_count"] == 1
    worker = nuvom(tmp_path, "runworker", "--tasks", "tasks", "--burst", "--no-scheduler")
    assert worker.returncode == 0 and "1 succeeded" in worker.stderr, worker.stderr


def test_runscheduler_refuses_bad_options(tmp_path: Path) -> None:
    bad = nuvom(tmp_path, "runscheduler", "--poll", "0")
    assert bad.returncode == 2
