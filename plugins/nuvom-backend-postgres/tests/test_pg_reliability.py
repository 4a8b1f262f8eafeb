"""Real worker processes (``python -m nuvom_cli runworker``) on PostgreSQL, checked
by the reliability harness's Jepsen-style checker (``tests/reliability``):

- R13: every worker connection killed (``pg_terminate_backend``) and the
  server restarted mid-run: nothing lost, no duplicate, workers recover alone;
- a burst worker end to end through the CLI.

R1, R2, R3, R4, R5, R9 and R14 (clock skew) run on PostgreSQL in
``tests/reliability`` itself, next to the other backends.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from nuvom_kernel.models import JobState

REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"
if not (REPO_TESTS / "reliability" / "harness.py").exists():  # pragma: no cover - installed outside the repository
    pytest.skip("needs the repository's tests/reliability harness", allow_module_level=True)
sys.path.insert(0, str(REPO_TESTS))

from reliability.checker import check, read_executions  # noqa: E402
from reliability.harness import Project, describe, make_rng, size, wait_until  # noqa: E402


@pytest.fixture
def project(tmp_path: Path, pg_url: str, schema: str) -> Any:
    """The harness's project on the postgres backend, on this session's emptied schema."""
    p = Project(tmp_path / "proj", "postgres",
                plugin_env={"NUVOM_POSTGRES__URL": pg_url, "NUVOM_POSTGRES__SCHEMA": schema})
    yield p
    p.close()


def _check(project: Project, enqueued: list[str]) -> Any:
    executions, torn = read_executions(project.exec_dir)
    return check(enqueued, executions, project.final_jobs(enqueued), project.kills, torn)


def test_burst_worker_end_to_end_through_the_cli(project: Project) -> None:
    rng, _ = make_rng("postgres burst worker")
    ids = project.enqueue_work(50, rng)
    worker = project.start_worker(concurrency=4, extra=["--burst"])
    assert worker.wait(120) == 0, worker.stderr()[-3000:]
    assert "50 succeeded" in worker.stderr()
    jobs = project.final_jobs(ids)
    assert sorted(job.result for job in jobs.values() if job is not None and job.state == JobState.SUCCEEDED) == list(range(50))


def _terminate_worker_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'nuvom' AND pid <> pg_backend_pid()").fetchall()
    return sum(1 for (ok,) in rows if ok)


def _done_count(project: Project) -> int:
    counts = project.app.queue.counts()  # type: ignore[attr-defined]
    return sum(n for per in counts.values() for s, n in per.items() if JobState(s).terminal)


def test_r13_killed_connections_and_a_server_restart_lose_nothing(project: Project, own_server: Any) -> None:
    rng, seed = make_rng("R13[postgres]")
    jobs = size(2000, 10_000)
    workers = [project.start_worker(concurrency=4) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    enqueued = project.enqueue_work(jobs, rng, max_ms=3.0)
    wait_until(lambda: _done_count(project) >= jobs // 5, 120, "a fifth of the jobs to finish")
    killed = _terminate_worker_connections(project.plugin_env["NUVOM_POSTGRES__URL"])
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
