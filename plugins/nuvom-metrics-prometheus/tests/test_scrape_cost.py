"""Issue 14: one scrape with 100k jobs in SQLite takes under 50 ms, and costs a
fixed number of store queries (three), whatever the number of jobs or queues."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from nuvom_metrics_prometheus.collector import make_registry
from nuvom_metrics_prometheus.plugin import metrics_dir
from nuvom_metrics_prometheus.recorder import Recorder
from prometheus_client.exposition import generate_latest

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState, WorkerInfo

JOBS = 100_000
QUEUES = ("default", "mail", "reports", "low")


@pytest.fixture(scope="module")
def big_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("scrape100k")
    app = Nuvom(root=root, environ={"NUVOM_QUEUE_BACKEND": "sqlite", "NUVOM_RESULT_BACKEND": "sqlite"})
    for start in range(0, JOBS, 10_000):
        app.queue.enqueue_many([Job(task=f"bulk.t{i % 7}", queue=QUEUES[i % len(QUEUES)], args=[i])
                                for i in range(start, start + 10_000)])
    at = time.time()
    for n in range(20):
        app.workers.register_worker(WorkerInfo(id=f"w{n}", host="h", pid=n, queues=list(QUEUES), concurrency=4,
                                               executor="thread", started_at=at, heartbeat_at=at,
                                               state="running" if n < 5 else "stopped"))
    recorder = Recorder(metrics_dir(root))  # this process's counters for 7 tasks x 4 queues
    for i in range(JOBS // 100):
        labels = {"task": f"bulk.t{i % 7}", "queue": QUEUES[i % len(QUEUES)]}
        recorder.inc("nuvom_jobs_enqueued", labels)
        recorder.inc("nuvom_jobs_finished", {**labels, "outcome": "succeeded"})
        recorder.observe("nuvom_job_run_seconds", labels, 0.01 * (i % 50))
    recorder.close()
    yield app
    app.close()


def test_a_scrape_with_100k_jobs_in_sqlite_takes_under_50_ms(big_app: Nuvom) -> None:
    registry = make_registry(big_app, metrics_dir(big_app.root))
    text = generate_latest(registry).decode()  # warm: the connection and page cache
    assert f'nuvom_jobs{{queue="default",state="queued"}} {float(JOBS // len(QUEUES))}' in text
    assert "nuvom_workers_up 5.0" in text and "nuvom_worker_slots 20.0" in text
    # CPU time of this thread (the scrape runs here, SQLite included): the cost the
    # property is about, and what a loaded CI machine cannot inflate by making the
    # test wait for a core.  Wall time is printed beside it.
    cpu, wall = [], []
    for _ in range(7):
        c0, t0 = time.thread_time(), time.perf_counter()
        generate_latest(registry)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    print(f"\nscrape with {JOBS} jobs in SQLite: CPU median {statistics.median(cpu) * 1000:.1f} ms; "
          f"wall median {statistics.median(wall) * 1000:.1f} ms, min {min(wall) * 1000:.1f} ms")
    assert statistics.median(cpu) < 0.050, f"scrape CPU times {cpu} (issue 14 demands under 50 ms)"


def test_a_scrape_makes_three_store_calls_whatever_the_queues(big_app: Nuvom) -> None:
    calls: list[str] = []

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(self.inner, name)

    class View:
        jobs = Counting(big_app.jobs)
        workers = Counting(big_app.workers)
        settings = big_app.settings

    generate_latest(make_registry(View(), metrics_dir(big_app.root)))  # type: ignore[arg-type]
    assert sorted(calls) == ["counts", "list_workers", "oldest_queued_at"]
    assert JobState.QUEUED.value in big_app.jobs.counts()["low"]
