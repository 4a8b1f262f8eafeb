"""Real ``nuvom runworker`` processes on Redis (tests/reliability's harness):
end to end through the CLI, R13 (server restart with AOF ``always``,
``CLIENT KILL``) and an idle worker's command rate.

R1-R5, R14 (clock skew) and the far-eta delivery run on Redis in
``tests/reliability`` itself, next to the other backends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from reliability.checker import check, read_executions
from reliability.harness import Project, describe, make_rng


@pytest.fixture
def project(tmp_path: Path, redis_server: Any, namespace: str) -> Callable[..., Project]:
    """``project(url=None, **settings)``: the harness's project on a Redis server; the
    url and namespace reach the workers as NUVOM_REDIS__URL / NUVOM_REDIS__NAMESPACE."""
    made: list[Project] = []

    def make(url: str | None = None, **settings: object) -> Project:
        made.append(Project(tmp_path / f"proj{len(made)}", "redis", settings={k: str(v) for k, v in settings.items()},
                            plugin_env={"NUVOM_REDIS__URL": url or redis_server.url,
                                        "NUVOM_REDIS__NAMESPACE": namespace}))
        return made[-1]

    yield make  # type: ignore[misc]
    for p in made:
        p.close()


def run_and_check(p: Project, enqueued: list[str], *, timeout: float = 120.0) -> object:
    p.wait_drained(timeout=timeout)
    p.stop_all()
    executions, torn = read_executions(p.exec_dir)
    return check(enqueued, executions, p.final_jobs(enqueued), p.kills, torn)


def test_runworker_end_to_end(project: Callable[..., Project]) -> None:
    """``nuvom runworker`` with queue_backend=redis runs every job once."""
    rng, _seed = make_rng("redis end-to-end")
    p = project()
    worker = p.start_worker(concurrency=4)
    worker.wait_ready()
    enqueued = p.enqueue_work(300, rng, max_ms=2.0)
    report = run_and_check(p, enqueued)
    assert not report.lost and not report.duplicates and report.states == {"succeeded": 300}, report.summary()  # type: ignore[attr-defined]
    assert "Traceback" not in worker.stderr()
    job = p.app.queue.get(enqueued[0])
    assert job is not None and job.result == 0 and job.attempts == 1


def _server_fault_run(p: Project, fault: Callable[[], None], seed_name: str) -> object:
    rng, seed = make_rng(seed_name)
    workers = [p.start_worker(concurrency=4) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    enqueued: list[str] = []
    for _ in range(4):
        enqueued += p.enqueue_work(200, rng, max_ms=30.0, start=len(enqueued))
        time.sleep(rng.uniform(0.05, 0.3))  # the jobs take about 0.4 s on 8 threads: mid-run
        assert p.live_count() > 0
        fault()
    report = run_and_check(p, enqueued, timeout=180)
    for w in workers:
        assert w.exited_at is not None  # stopped by stop_all: they survived the faults by themselves
    describe({"property": "R13", "fault": seed_name, "seed": seed, "jobs": len(enqueued),
              "lost": len(report.lost), "duplicates": report.duplicate_count})  # type: ignore[attr-defined]
    assert not report.lost and not report.unfinished, report.summary()  # type: ignore[attr-defined]
    assert report.states == {"succeeded": len(enqueued)}, report.summary()  # type: ignore[attr-defined]
    return report


@pytest.mark.slow
def test_r13_server_restart_with_aof_always_loses_nothing(project: Callable[..., Project],
                                                          own_server: Callable[..., Any]) -> None:
    """The server is killed (SIGKILL) and restarted mid-run, three times: every
    acknowledged enqueue and outcome survives; the workers reconnect by themselves."""
    server = own_server("--appendonly", "yes", "--appendfsync", "always")
    p = project(server.url)
    report = _server_fault_run(p, lambda: server.restart(kill=True), "R13[redis restart]")
    assert not report.duplicates, report.summary()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_r13_killed_client_connections_lose_nothing(project: Callable[..., Project],
                                                    redis_server: Any) -> None:
    """Every client connection is killed (CLIENT KILL TYPE normal) mid-run, four times."""
    admin = redis.Redis.from_url(redis_server.url)
    p = project()
    try:
        _server_fault_run(p, lambda: admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"),
                          "R13[redis CLIENT KILL]")
    finally:
        admin.close()


def test_an_idle_worker_sends_at_most_one_command_a_second(project: Callable[..., Project],
                                                          redis_server: Any) -> None:
    """Other than its blocking read, an idle worker polling every 0.1 s sends
    claims at most once a second (the wake-up reader tells it nothing changed);
    its scheduler loop, told of schedule changes by the same reader, reads the
    schedules once per ``scheduler.idle_secs`` (10 s): all counted together."""
    p = project(poll_interval_secs=0.1, sweep_interval_secs=5.0, lease_secs=30.0)
    worker = p.start_worker(concurrency=2)
    worker.wait_ready()
    time.sleep(1.5)  # start-up work done
    window = 6.0
    counted: list[str] = []
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        with admin.monitor() as monitor:
            deadline = time.monotonic() + window
            for event in monitor.listen():
                command = str(event.get("command", ""))
                if event.get("client_type") == "lua":
                    continue  # a command inside a script
                if command and not command.upper().startswith(("XREAD", "MONITOR", "SCRIPT LOAD", "HELLO")):
                    counted.append(command[:200])
                if time.monotonic() > deadline:
                    break
    finally:
        admin.close()
    # once a second for the claims, plus a sweep (every 5 s), a heartbeat (every 10 s) and
    # the scheduler loop's look at the earliest schedule (every 10 s); loading a script
    # and a new connection's handshake are not counted
    assert len(counted) <= window + 3, "\n".join(c.replace("\n", " ")[:100] for c in counted)
