"""Real worker processes (``python -m nuvom_cli runworker``) on PostgreSQL, checked
by the reliability harness's Jepsen-style checker (``tests/reliability``):

- R1: workers killed (SIGKILL / TerminateProcess) and restarted: nothing
  lost, every duplicate explained by a kill, no retry used;
- R2: four worker processes, every job exactly once;
- R13: every worker connection killed (``pg_terminate_backend``) and the
  server restarted mid-run: nothing lost, no duplicate, workers recover alone;
- R14: workers whose clocks are off by +-60 s neither steal nor lose leases;
- a burst worker end to end through the CLI.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import JobState

REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"
if not (REPO_TESTS / "reliability" / "harness.py").exists():  # pragma: no cover - installed outside the repository
    pytest.skip("needs the repository's tests/reliability harness", allow_module_level=True)
sys.path.insert(0, str(REPO_TESTS))

from reliability.checker import check, read_executions  # noqa: E402
from reliability.harness import Project, describe, make_rng, size, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent


@dataclass
class PgProject(Project):
    """The harness's project on the postgres backend of this session's server."""

    pg_url: str = ""
    pg_schema: str = ""
    #: the clock offset (seconds) the next worker started gets (R14)
    next_skew: float = 0.0

    def pg_env(self) -> dict[str, str]:
        return {"NUVOM_POSTGRES__URL": self.pg_url, "NUVOM_POSTGRES__SCHEMA": self.pg_schema}

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env(**extra)
        env.update(self.pg_env())
        if self.next_skew:
            # sitecustomize.py in this directory shifts time.time() in the worker process
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE / "skew"), env.get("PYTHONPATH", "")) if p)
            env["NUVOM_TEST_CLOCK_SKEW"] = str(self.next_skew)
        return env

    @property
    def app(self) -> Nuvom:
        if self._app is None:
            self._app = Nuvom(root=self.root, environ=self.pg_env(), **self.nuvom_settings())  # type: ignore[arg-type]
        return self._app


@pytest.fixture
def project(tmp_path: Path, pg_url: str, schema: str) -> Any:
    p = PgProject(tmp_path / "proj", "postgres", pg_url=pg_url, pg_schema=schema)
    yield p
    p.close()


def _check(project: PgProject, enqueued: list[str]) -> Any:
    executions, torn = read_executions(project.exec_dir)
    return check(enqueued, executions, project.final_jobs(enqueued), project.kills, torn)


def test_burst_worker_end_to_end_through_the_cli(project: PgProject) -> None:
    rng, _ = make_rng("postgres burst worker")
    ids = project.enqueue_work(50, rng)
    worker = project.start_worker(concurrency=4, extra=["--burst"])
    assert worker.wait(120) == 0, worker.stderr()[-3000:]
    assert "50 succeeded" in worker.stderr()
    jobs = project.final_jobs(ids)
    assert sorted(job.result for job in jobs.values() if job is not None and job.state == JobState.SUCCEEDED) == list(range(50))


def test_r1_killed_workers_lose_nothing_and_every_duplicate_is_explained(project: PgProject) -> None:
    rng, seed = make_rng("R1[postgres]")
    jobs, kills, threads = size(600, 10_000), size(6, 100), 4
    enqueued: list[str] = []
    workers = [project.start_worker(concurrency=threads) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    chunk = jobs // kills
    for k in range(kills):
        count = chunk if k < kills - 1 else jobs - len(enqueued)
        enqueued += project.enqueue_work(count, rng, max_ms=8.0, start=len(enqueued), retries=0)
        time.sleep(rng.uniform(0.1, 0.5))
        ready = [w for w in project.live_workers() if w.is_ready()]
        if not ready:
            project.live_workers()[0].wait_ready()
            ready = project.live_workers()[:1]
        project.kill(rng.choice(ready))
        project.start_worker(concurrency=threads)
    project.wait_drained(timeout=size(180, 900))
    project.stop_all()
    report = _check(project, enqueued)
    describe({"property": "R1", "backend": "postgres", "seed": seed, "jobs": len(enqueued), "kills": len(project.kills),
              "lost": len(report.lost), "duplicates": report.duplicate_count, "unexplained": len(report.unexplained)})
    detail = f"seed {seed}: {report.summary()} {report.examples()}"
    assert not report.lost and not report.unfinished, detail
    assert not report.unexplained and not report.phantom and not report.reused_tokens and not report.strangers, detail
    bound = threads + project.app.settings.max_unrecorded
    assert report.max_running_per_kill <= threads, detail
    assert report.duplicate_count <= len(project.kills) * bound, detail
    assert report.states == {"succeeded": len(enqueued)}, detail  # a worker's death never used a retry


def test_r2_four_processes_run_every_job_exactly_once(project: PgProject) -> None:
    rng, seed = make_rng("R2[postgres, 4 processes]")
    jobs = size(1000, 10_000)
    started = time.monotonic()
    enqueued: list[str] = []
    for _ in range(4):
        project.start_worker(concurrency=4)
    enqueued += project.enqueue_work(jobs // 2, rng, max_ms=1.0)
    for w in project.workers:
        w.wait_ready()
    while len(enqueued) < jobs:
        enqueued += project.enqueue_work(min(jobs - len(enqueued), rng.randint(1, 200)), rng, max_ms=1.0,
                                         start=len(enqueued))
        time.sleep(rng.uniform(0, 0.02))
    project.wait_drained(timeout=size(120, 900))
    project.stop_all()
    report = _check(project, enqueued)
    describe({"property": "R2", "backend": "postgres", "processes": 4, "seed": seed, "jobs": len(enqueued),
              "lost": len(report.lost), "duplicates": report.duplicate_count,
              "duration_s": round(time.monotonic() - started, 1)})
    assert not report.lost and not report.unfinished and not report.duplicates, f"seed {seed}: {report.summary()} {report.examples()}"


def _terminate_worker_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'nuvom' AND pid <> pg_backend_pid()").fetchall()
    return sum(1 for (ok,) in rows if ok)


def _done_count(project: PgProject) -> int:
    counts = project.app.queue.counts()  # type: ignore[attr-defined]
    return sum(n for per in counts.values() for s, n in per.items() if JobState(s).terminal)


def test_r13_killed_connections_and_a_server_restart_lose_nothing(project: PgProject, own_server: Any) -> None:
    rng, seed = make_rng("R13[postgres]")
    jobs = size(2000, 10_000)
    workers = [project.start_worker(concurrency=4) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    enqueued = project.enqueue_work(jobs, rng, max_ms=3.0)
    wait_until(lambda: _done_count(project) >= jobs // 5, 120, "a fifth of the jobs to finish")
    killed = _terminate_worker_connections(project.pg_url)
    assert killed >= 2, "the workers' connections were not found in pg_stat_activity"
    wait_until(lambda: _done_count(project) >= jobs // 2, 120, "half of the jobs to finish after the kill")
    own_server.restart("fast")  # every connection dropped, the server down for a moment
    project.wait_drained(timeout=size(180, 900))
    assert all(w.alive() for w in workers), "a worker died instead of reconnecting"
    project.stop_all()
    report = _check(project, enqueued)
    describe({"property": "R13", "backend": "postgres", "seed": seed, "jobs": len(enqueued), "killed_connections": killed,
              "lost": len(report.lost), "duplicates": report.duplicate_count})
    assert not report.lost and not report.unfinished and not report.duplicates, f"seed {seed}: {report.summary()} {report.examples()}"
    final = project.final_jobs(enqueued)
    assert all(job is not None and job.state == JobState.SUCCEEDED for job in final.values())


def test_r14_skewed_worker_clocks_neither_steal_nor_lose_leases(project: PgProject) -> None:
    """Two workers, one 60 s ahead and one 60 s behind, 2 s leases and jobs up to
    3 s long: if a worker's clock set or judged a lease, the one behind would
    see every lease of the other as expired and run its jobs again."""
    rng, seed = make_rng("R14[postgres]")
    project.lease_secs = 2.0
    workers = []
    for skew in (60.0, -60.0):
        project.next_skew = skew
        workers.append(project.start_worker(concurrency=4))
    project.next_skew = 0.0
    for w in workers:
        w.wait_ready()
    enqueued = project.enqueue_work(24, rng, max_ms=3000.0)
    project.wait_drained(timeout=120)
    offsets = sorted(w.heartbeat_at - time.time() for w in project.app.workers.list_workers())
    assert offsets[0] < -30 and offsets[-1] > 30, offsets  # the skew really applied in the workers
    project.stop_all()
    report = _check(project, enqueued)
    describe({"property": "R14", "backend": "postgres", "seed": seed, "jobs": len(enqueued),
              "lost": len(report.lost), "duplicates": report.duplicate_count})
    assert not report.lost and not report.unfinished and not report.duplicates, f"seed {seed}: {report.summary()} {report.examples()}"
    executions, _ = read_executions(project.exec_dir)
    assert len({e.pid for runs in executions.values() for e in runs}) == 2  # both skewed workers ran jobs
