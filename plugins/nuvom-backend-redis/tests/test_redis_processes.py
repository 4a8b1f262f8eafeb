"""Real ``nuvom runworker`` processes on Redis (tests/reliability's harness):
end to end through the CLI, R1 (kills), R2 (4 processes), R3 (killed
producers), R13 (server restart with AOF ``always``, ``CLIENT KILL``) and an
idle worker's command rate."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from reliability.checker import check, read_executions
from reliability.harness import HERE, Project, describe, make_rng, size

from nuvom_kernel.app import Nuvom


class RedisProject(Project):
    """The harness's project on a Redis server: the url and namespace reach the
    worker processes as NUVOM_REDIS__URL / NUVOM_REDIS__NAMESPACE."""

    def __init__(self, root: Path, url: str, namespace: str, **settings: object) -> None:
        values = {"redis__url": url, "redis__namespace": namespace, **{k: str(v) for k, v in settings.items()}}
        super().__init__(root, "redis", settings=values)

    @property
    def app(self) -> Nuvom:
        if self._app is None:
            values = self.nuvom_settings()
            env = {f"NUVOM_{k.upper()}": v for k, v in values.items() if "__" in k}
            self._app = Nuvom(root=self.root, environ=env, **{k: v for k, v in values.items() if "__" not in k})
        return self._app

    def quarantined(self) -> list[str]:
        return []


@pytest.fixture
def project(tmp_path: Path, redis_server: Any, namespace: str) -> Callable[..., RedisProject]:
    made: list[RedisProject] = []

    def make(url: str | None = None, **kwargs: object) -> RedisProject:
        made.append(RedisProject(tmp_path / f"proj{len(made)}", url or redis_server.url, namespace, **kwargs))
        return made[-1]

    yield make  # type: ignore[misc]
    for p in made:
        p.close()


def run_and_check(p: RedisProject, enqueued: list[str], *, timeout: float = 120.0) -> object:
    p.wait_drained(timeout=timeout)
    p.stop_all()
    executions, torn = read_executions(p.exec_dir)
    return check(enqueued, executions, p.final_jobs(enqueued), p.kills, torn)


def test_runworker_end_to_end(project: Callable[..., RedisProject]) -> None:
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


@pytest.mark.slow
def test_r2_four_processes_run_every_job_exactly_once(project: Callable[..., RedisProject]) -> None:
    rng, seed = make_rng("R2[redis, 4 processes]")
    jobs = size(2000, 10_000)
    p = project()
    enqueued: list[str] = []
    for _ in range(4):
        p.start_worker(concurrency=4)
    enqueued += p.enqueue_work(jobs // 2, rng, max_ms=1.0)
    for w in p.workers:
        w.wait_ready()
    while len(enqueued) < jobs:
        enqueued += p.enqueue_work(min(jobs - len(enqueued), rng.randint(1, 200)), rng, max_ms=1.0,
                                   start=len(enqueued))
        time.sleep(rng.uniform(0, 0.02))
    report = run_and_check(p, enqueued, timeout=size(300, 900))
    describe({"property": "R2", "backend": "redis", "processes": 4, "seed": seed, "jobs": len(enqueued),
              "lost": len(report.lost), "duplicates": report.duplicate_count})  # type: ignore[attr-defined]
    detail = f"seed {seed}: {report.summary()}"  # type: ignore[attr-defined]
    assert not report.lost and not report.unfinished and not report.duplicates, detail  # type: ignore[attr-defined]
    assert report.states == {"succeeded": len(enqueued)}, detail  # type: ignore[attr-defined]


@pytest.mark.slow
def test_r1_random_kills_lose_nothing(project: Callable[..., RedisProject]) -> None:
    rng, seed = make_rng("R1[redis]")
    jobs, kills, threads = size(1000, 10_000), size(8, 100), 4
    p = project()
    enqueued: list[str] = []
    for _ in range(2):
        p.start_worker(concurrency=threads)
    for w in p.workers:
        w.wait_ready()
    chunk = jobs // kills
    for k in range(kills):
        count = chunk if k < kills - 1 else jobs - len(enqueued)
        enqueued += p.enqueue_work(count, rng, max_ms=8.0, start=len(enqueued), retries=0)
        time.sleep(rng.uniform(0.1, 0.4))
        ready = [w for w in p.live_workers() if w.is_ready()] or p.live_workers()[:1]
        p.kill(rng.choice(ready))
        p.start_worker(concurrency=threads)
    report = run_and_check(p, enqueued, timeout=size(300, 900))
    describe({"property": "R1", "backend": "redis", "seed": seed, "jobs": len(enqueued), "kills": len(p.kills),
              "lost": len(report.lost), "duplicates": report.duplicate_count})  # type: ignore[attr-defined]
    detail = f"seed {seed}: {report.summary()} {report.examples()}"  # type: ignore[attr-defined]
    assert not report.lost and not report.unfinished, detail  # type: ignore[attr-defined]
    assert not report.unexplained and not report.phantom and not report.reused_tokens, detail  # type: ignore[attr-defined]
    assert report.duplicate_count <= len(p.kills) * (threads + p.app.settings.max_unrecorded), detail  # type: ignore[attr-defined]
    assert report.states == {"succeeded": len(enqueued)}, detail  # type: ignore[attr-defined]


@pytest.mark.slow
def test_r3_killed_producers_lose_no_returned_enqueue(project: Callable[..., RedisProject]) -> None:
    rng, seed = make_rng("R3[redis]")
    kills = size(10, 100)
    p = project()
    p.app.queue  # noqa: B018
    returned: list[str] = []
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, str(HERE / "rel_producer.py")], cwd=p.root, env=p.env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda out=proc.stdout, into=lines: into.extend(
            line.decode().strip() for line in out), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not lines:  # started and enqueuing (imports take a while on a loaded machine)
            assert proc.poll() is None and time.monotonic() < deadline, "the producer did not start enqueuing"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.02, 0.3))  # then killed mid-burst
        proc.kill()
        proc.wait(30)
        reader.join(30)
        returned += [line for line in lines if line]
    worker = p.start_worker(concurrency=4)
    worker.wait_ready()
    report = run_and_check(p, returned)
    describe({"property": "R3", "backend": "redis", "seed": seed, "kills": kills, "returned": len(returned),
              "lost": len(report.lost)})  # type: ignore[attr-defined]
    assert returned and not report.lost and not report.unfinished, report.summary()  # type: ignore[attr-defined]


def _server_fault_run(p: RedisProject, fault: Callable[[], None], seed_name: str) -> object:
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
def test_r13_server_restart_with_aof_always_loses_nothing(project: Callable[..., RedisProject],
                                                          own_server: Callable[..., Any]) -> None:
    """The server is killed (SIGKILL) and restarted mid-run, three times: every
    acknowledged enqueue and outcome survives; the workers reconnect by themselves."""
    server = own_server("--appendonly", "yes", "--appendfsync", "always")
    p = project(server.url)
    report = _server_fault_run(p, lambda: server.restart(kill=True), "R13[redis restart]")
    assert not report.duplicates, report.summary()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_r13_killed_client_connections_lose_nothing(project: Callable[..., RedisProject],
                                                    redis_server: Any) -> None:
    """Every client connection is killed (CLIENT KILL TYPE normal) mid-run, four times."""
    admin = redis.Redis.from_url(redis_server.url)
    p = project()
    try:
        _server_fault_run(p, lambda: admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"),
                          "R13[redis CLIENT KILL]")
    finally:
        admin.close()


def test_an_idle_worker_sends_at_most_one_command_a_second(project: Callable[..., RedisProject],
                                                          redis_server: Any) -> None:
    """Other than its blocking read, an idle worker polling every 0.1 s sends
    claims at most once a second (the wake-up reader tells it nothing changed);
    its scheduler loop reads the due schedules once per scheduler poll (1 s)."""
    p = project(poll_interval_secs=0.1, sweep_interval_secs=5.0, lease_secs=30.0)
    worker = p.start_worker(concurrency=2)
    worker.wait_ready()
    time.sleep(1.5)  # start-up work done
    window = 6.0
    counted: list[str] = []
    schedule_reads: list[str] = []
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        with admin.monitor() as monitor:
            deadline = time.monotonic() + window
            for event in monitor.listen():
                command = str(event.get("command", ""))
                if event.get("client_type") == "lua":
                    continue  # a command inside a script
                if ":sched:" in command:
                    schedule_reads.append(command[:200])
                elif command and not command.upper().startswith(("XREAD", "MONITOR", "SCRIPT LOAD", "HELLO")):
                    counted.append(command[:200])
                if time.monotonic() > deadline:
                    break
    finally:
        admin.close()
    # once a second for the claims, plus a sweep (every 5 s) and a heartbeat (every 10 s);
    # loading a script and a new connection's handshake are not counted
    assert len(counted) <= window + 3, "\n".join(c.replace("\n", " ")[:100] for c in counted)
    assert len(schedule_reads) <= window + 2, schedule_reads
