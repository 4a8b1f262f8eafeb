"""Retention: ended schedules (done, cancelled) do not pile up.

The scheduler loop deletes those that ended more than ``retention_secs`` ago
(30 days by default); ``nuvom schedules purge`` and ``sdk.purge_schedules``
delete on demand.  Active and paused schedules are never deleted, and a
cancelled periodic task declared in code is kept unless asked (its record
stops the next scheduler from storing it again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from nuvom_backend_memory import MemoryBackend
from nuvom_scheduler.periodic import sync_periodic
from nuvom_scheduler.plugin import make_loop, options_of

import nuvom.sdk as sdk
from nuvom_kernel.app import Nuvom, use_app
from nuvom_kernel.schedules import ScheduleState
from nuvom_kernel.testing.queue_contract import wait_for

DAY = 86400.0


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Nuvom]:
    a = Nuvom(root=tmp_path, queue=MemoryBackend(), queue_backend="memory", result_backend="memory")
    with use_app(a):
        yield a


def ended_mix(app: Nuvom) -> dict[str, str]:
    """An active, a done (a one-off that fired), a cancelled and a cancelled code-declared schedule."""

    @app.task
    def ping() -> str:
        return "pong"

    @app.task(cron="0 * * * *")
    def hourly() -> str:
        return "tick"

    ids = {"active": ping.schedule(interval=60).id}
    once = ping.schedule(in_=timedelta(0))
    assert make_loop(app, periodic=False).run_once() == 1
    assert sdk.get_schedule(once.id, app=app).state == ScheduleState.DONE
    ids["done"] = once.id
    ids["cancelled"] = ping.schedule(interval=5).id
    sdk.cancel_schedule(ids["cancelled"], app=app)
    assert sync_periodic(app) == 1
    ids["code"] = "periodic." + hourly.name
    sdk.cancel_schedule(ids["code"], app=app)
    return ids


def test_purge_schedules_from_python(app: Nuvom) -> None:
    ids = ended_mix(app)
    assert sdk.purge_schedules(older_than="1h", app=app) == 0  # they ended a moment ago
    assert sdk.purge_schedules(state="done", app=app) == 1
    assert sdk.purge_schedules(app=app) == 1
    left = {s.id for s in sdk.list_schedules(app=app)}
    assert left == {ids["active"], ids["code"]}
    # a cancelled periodic task stays cancelled: the next scheduler does not store it again
    assert sync_periodic(app) == 1 and sdk.get_schedule(ids["code"], app=app).state == ScheduleState.CANCELLED
    assert sdk.purge_schedules(include_code=True, app=app) == 1
    with pytest.raises(ValueError, match="never deletes active"):
        sdk.purge_schedules(state=["active"], app=app)
    with pytest.raises(ValueError, match="invalid duration"):
        sdk.purge_schedules(older_than="soon", app=app)


def test_the_loop_deletes_schedules_past_the_retention(app: Nuvom) -> None:
    ids = ended_mix(app)
    assert options_of(app).retention_secs == 30 * DAY
    today = make_loop(app, periodic=False)
    assert today.purge_ended() == 0
    later = make_loop(app, periodic=False, poll=0.05, clock=lambda: time.time() + 31 * DAY)
    later.start()  # the running loop purges on its first pass, then every 10 minutes at most
    try:
        wait_for(lambda: later.purged == 2)
    finally:
        later.stop()
    assert {s.id for s in sdk.list_schedules(app=app)} == {ids["active"], ids["code"]}


def test_retention_can_be_turned_off(tmp_path: Path) -> None:
    for value in ("", "0"):
        a = Nuvom(root=tmp_path, queue=MemoryBackend(), queue_backend="memory", result_backend="memory",
                  environ={"NUVOM_SCHEDULER__RETENTION_SECS": value})
        assert options_of(a).retention_secs is None
        loop = make_loop(a, periodic=False, clock=lambda: time.time() + 3650 * DAY)
        with use_app(a):
            ended_mix(a)
        assert loop.purge_ended() == 0 and len(sdk.list_schedules(app=a)) == 4
        a.close()


def test_nuvom_schedules_purge(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("from nuvom.task import task\n\n@task\ndef ping():\n    return 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_PROJECT_ROOT=str(tmp_path), PYTHONUNBUFFERED="1")

    def nuvom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nuvom_cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    code = textwrap.dedent('''
        from tasks import ping
        print(ping.schedule(interval=60).id, ping.schedule(interval=30).id)
    ''')
    made = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    keep, drop = made.stdout.split()
    assert nuvom("schedules", "cancel", drop).returncode == 0
    refused = nuvom("schedules", "purge", "--state", "active", "--yes")
    assert refused.returncode == 2 and "never deletes active" in refused.stderr
    assert nuvom("schedules", "purge", "--state", "sometime", "--yes").returncode == 2
    assert nuvom("schedules", "purge", "--json").returncode == 2  # --json needs --yes
    young = nuvom("schedules", "purge", "--older-than", "1d", "--yes", "--json")
    assert young.returncode == 0 and json.loads(young.stdout) == {"deleted": 0}
    done = nuvom("schedules", "purge", "--yes", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == {"deleted": 1}, done.stderr
    listed = json.loads(nuvom("schedules", "list", "--json").stdout)
    assert [s["id"] for s in listed] == [keep]
