"""An idle worker makes at most one query per second (issue 11), and the idle
claims it skips never hide work: a wake-up, a scheduled job coming due and
the slow poll each make the next claim reach the server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nuvom_backend_postgres import PostgresBackend
from nuvom_backend_postgres.idle import IdlePolls

from nuvom_kernel.models import Job, JobState
from nuvom_kernel.testing.queue_contract import wait_for
from nuvom_kernel.worker import stop_file

Make = Callable[..., PostgresBackend]
TASKS = Path(__file__).resolve().parents[3] / "tests" / "reliability" / "rel_tasks.py"
#: ``log_statement = all`` writes one line per statement the server runs
_STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]*): ?(.*)")
WINDOW_SECS = 20.0


def _statements(log: Path, start: int) -> list[str]:
    return _STATEMENT.findall(log.read_bytes()[start:].decode("utf-8", "replace"))


@pytest.mark.skipif(not TASKS.exists(), reason="needs the repository's tests/reliability tasks")
def test_an_idle_worker_makes_at_most_one_query_per_second(own_server: Any, pg_url: str, schema: str,
                                                            make_backend: Make, tmp_path: Path) -> None:
    """Every statement the server runs for one idle ``nuvom runworker`` with the
    default settings (claims, heartbeat, sweep, history moves, purges, and its
    scheduler loop's reads of the schedules) over 20 s, counted from the
    server's own statement log: at most 20 in all."""
    # log_statement is set for the worker's connections only (a superuser may set it per session)
    url = pg_url + ("&" if "?" in pg_url else "?") + "options=" + urllib.parse.quote("-c log_statement=all")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_QUEUE_BACKEND="postgres", NUVOM_RESULT_BACKEND="postgres", NUVOM_POSTGRES__URL=url,
               NUVOM_POSTGRES__SCHEMA=schema, NUVOM_PROJECT_ROOT=str(tmp_path), PYTHONUNBUFFERED="1",
               RELIABILITY_LOG_DIR=str(tmp_path))
    err_path = tmp_path / "worker.stderr"
    with open(err_path, "wb") as err:
        worker = subprocess.Popen([sys.executable, "-m", "nuvom_cli", "runworker", "--tasks", str(TASKS),
                                   "--concurrency", "4", "--id", "idle-w", "--no-manifest"],
                                  cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: "ready" in err_path.read_text(errors="replace") or worker.poll() is not None, timeout=60)
        assert worker.poll() is None, err_path.read_text(errors="replace")[-3000:]
        time.sleep(2.0)  # past start-up (migration check, LISTEN, first registration)
        log = own_server.dir / "server.log"
        start = log.stat().st_size
        time.sleep(WINDOW_SECS)
        seen = _statements(log, start)
        kinds = Counter(" ".join(s.split())[:60] or "(multi-line)" for s in seen)
        assert len(seen) <= WINDOW_SECS, f"{len(seen)} statements in {WINDOW_SECS:g} s: {kinds.most_common()}"
        assert seen, "no statement logged: log_statement did not apply, the count proves nothing"
        # the scheduler loop runs (it sleeps until the next fire, at most scheduler.idle_secs)
        assert any(".schedules WHERE" in s for s in seen), kinds.most_common()
        # and the idle worker still answers at once when work arrives
        producer = make_backend()
        job = producer.enqueue(Job(task="rel.work", args=[1, 0]))
        wait_for(lambda: producer.get(job.id).state == JobState.SUCCEEDED, timeout=30)  # type: ignore[union-attr]
    finally:
        path = stop_file(tmp_path, "idle-w")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def _idle(backend: PostgresBackend) -> None:
    """Subscribe (LISTEN up), then claim until claims are skipped."""
    backend.subscribe(lambda: None)
    wait_for(lambda: backend.claim(["default"], 4, 30, "w") == [] and backend.idle.skipped > 0, timeout=10)


def test_idle_claims_skip_the_server_until_a_wake_up(make_backend: Make) -> None:
    worker, producer = make_backend(idle_poll_secs=3600.0), make_backend()
    _idle(worker)
    skipped = worker.idle.skipped
    assert worker.claim(["default"], 4, 30, "w") == [] and worker.idle.skipped == skipped + 1
    job = producer.enqueue(Job(task="t"))  # another process: only its NOTIFY tells
    [claimed] = wait_for(lambda: worker.claim(["default"], 4, 30, "w"), timeout=10)
    assert claimed.id == job.id


def test_a_scheduled_job_coming_due_makes_the_claim_real(make_backend: Make) -> None:
    worker, producer = make_backend(idle_poll_secs=3600.0), make_backend()
    _idle(worker)
    job = producer.enqueue(Job(task="t", eta=producer.now() + 1.5))
    assert job.state == JobState.SCHEDULED
    # its NOTIFY makes one claim real, which learns when the job is due; skipped until then
    [claimed] = wait_for(lambda: worker.claim(["default"], 4, 30, "w"), timeout=10)
    assert claimed.id == job.id


def test_a_delayed_retry_elsewhere_is_found_when_due(make_backend: Make) -> None:
    from nuvom_kernel.models import Outcome

    worker, other = make_backend(idle_poll_secs=3600.0), make_backend()
    job = other.enqueue(Job(task="t", max_retries=1))
    [mine] = other.claim(["default"], 1, 30, "other", start_now=1)
    _idle(worker)
    assert other.finish(job.id, mine.token or 0, Outcome(kind="retry", eta=time.time() + 1.0))
    [claimed] = wait_for(lambda: worker.claim(["default"], 4, 30, "w"), timeout=10)
    assert claimed.id == job.id and claimed.attempts == 1


def test_poll_mode_and_a_down_listener_never_skip(make_backend: Make) -> None:
    polling = make_backend(wakeups="poll")
    polling.subscribe(lambda: None)
    for _ in range(3):
        assert polling.claim(["default"], 4, 30, "w") == []
    assert polling.idle.skipped == 0
    unsubscribed = make_backend()  # no LISTEN connection: nothing tells it about new work
    for _ in range(3):
        assert unsubscribed.claim(["default"], 4, 30, "w") == []
    assert unsubscribed.idle.skipped == 0


def test_a_ring_during_a_claim_keeps_the_next_claim_real() -> None:
    polls = IdlePolls(60.0, lambda: True)
    key = ("default",)
    polls.after_claim(key, polls.before_claim(), 0, float("inf"))
    assert polls.may_skip(key, server_now=0.0)
    sent = polls.before_claim()
    polls.ring()  # a job committed while the claim ran: its snapshot missed it
    polls.after_claim(key, sent, 0, float("inf"))
    assert not polls.may_skip(key, server_now=0.0)
    polls.after_claim(key, polls.before_claim(), 0, 100.0)
    assert polls.may_skip(key, server_now=99.0) and not polls.may_skip(key, server_now=100.0)
    polls.after_claim(key, polls.before_claim(), 1, float("inf"))  # it found work: ask again next time
    assert not polls.may_skip(key, server_now=0.0)
    assert not IdlePolls(60.0, lambda: False).may_skip(key, server_now=0.0)


def test_a_claim_after_a_wake_up_goes_alone_and_the_next_poll_asks() -> None:
    """The claim that answers a NOTIFY is one statement (no next-due query
    with it); if it found nothing, the next poll asks, and only then are polls
    skipped."""
    polls = IdlePolls(60.0, lambda: True)
    key = ("default",)
    assert not polls.wants_next_due(key)  # nothing known yet: the first claim goes alone
    polls.after_claim(key, polls.before_claim(), 0, None)
    assert polls.wants_next_due(key) and not polls.may_skip(key, server_now=0.0)
    polls.ring()
    assert not polls.wants_next_due(key)  # news: claim at once, alone
    polls.after_claim(key, polls.before_claim(), 0, None)  # it found nothing (another worker won)
    assert not polls.may_skip(key, server_now=0.0)  # not asked: never skipped
    assert polls.wants_next_due(key)
    polls.after_claim(key, polls.before_claim(), 0, float("inf"))
    assert polls.may_skip(key, server_now=0.0)


def test_schedule_changes_ring_the_schedule_bell_elsewhere_and_jobs_do_not(make_backend: Make) -> None:
    """A schedule added, paused or resumed in one process wakes another's
    scheduler loops (NOTIFY with the payload ``schedules``); an enqueue does not."""
    import threading

    from nuvom_kernel.schedules import Schedule, ScheduleState

    loop_side, other = make_backend(), make_backend()
    told, claims = threading.Event(), threading.Event()
    loop_side.subscribe(claims.set)
    unsubscribe = loop_side.subscribe_schedules(told.set)
    assert unsubscribe is not None
    told.clear()
    claims.clear()
    other.enqueue(Job(task="t"))
    assert claims.wait(10)
    time.sleep(0.3)  # the job's NOTIFY arrived; a schedule bell would have rung with it
    assert not told.is_set()
    claims.clear()
    other.add_schedule(Schedule(id="every-hour", task="t", kind="interval", interval_secs=3600.0,
                                next_fire_at=time.time() + 3600))
    assert told.wait(10)
    told.clear()
    other.set_schedule_state("every-hour", ScheduleState.PAUSED)
    assert told.wait(10)
    assert not claims.is_set()  # schedule changes do not make workers claim
    unsubscribe()
    assert make_backend(wakeups="poll").subscribe_schedules(told.set) is None
