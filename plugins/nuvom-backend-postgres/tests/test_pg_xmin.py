"""A transaction holding back the xmin horizon while jobs flow (issue 11).

While a transaction is open, no row version it might still see can be
vacuumed: every job the queue claims, starts, finishes and moves leaves dead
row versions that stay, and a claim that walks an index full of them slows
down.  The test runs one worker process (4 threads) on a steady flow of no-op
jobs, measures its throughput clean, then with a transaction holding back
xmin (``REPEATABLE READ`` with an assigned transaction id), and requires at
least 70% of the clean figure.  15 s per phase by default, 60 s with
``NUVOM_FULL_RELIABILITY=1``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_pg_reliability import REPO_TESTS  # noqa: E402

sys.path.insert(0, str(REPO_TESTS))
from reliability.harness import Project, describe, make_rng, size  # noqa: E402

#: Jobs kept waiting: enough that the worker never runs dry between top-ups.
BACKLOG = 2000


class Ends:
    """Counts the ``end`` lines the workers' execution logs gained (read incrementally)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}
        self.count = 0

    def refresh(self) -> int:
        for path in self.directory.glob("exec-*.log"):
            with open(path, "rb") as fh:
                fh.seek(self.offsets.get(path, 0))
                data = self.partial.pop(path, b"") + fh.read()
                self.offsets[path] = fh.tell()
            lines = data.split(b"\n")
            if lines[-1]:
                self.partial[path] = lines[-1]
            self.count += sum(1 for line in lines[:-1] if line.endswith(b" end"))
        return self.count


@pytest.fixture
def project(tmp_path: Path, pg_url: str, schema: str) -> Iterator[Project]:
    # the default poll and sweep intervals (the harness polls and sweeps faster)
    p = Project(tmp_path / "proj", "postgres", sweep_interval_secs=5.0, settings={"poll_interval_secs": "1.0"},
                plugin_env={"NUVOM_POSTGRES__URL": pg_url, "NUVOM_POSTGRES__SCHEMA": schema})
    yield p
    p.close()


def test_a_held_back_xmin_keeps_70_percent_of_the_throughput(project: Project) -> None:
    rng, seed = make_rng("xmin horizon [postgres]")
    phase = float(size(15, 60))
    worker = project.start_worker(concurrency=4)
    worker.wait_ready()
    ends = Ends(project.exec_dir)
    enqueued: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            while not stop.is_set():
                waiting = len(enqueued) - ends.refresh()
                if waiting < BACKLOG:
                    enqueued.extend(project.enqueue_work(BACKLOG, rng, start=len(enqueued)))
                stop.wait(0.05)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    producer = threading.Thread(target=produce, name="xmin-producer", daemon=True)
    producer.start()

    def measure() -> float:
        start, begun = ends.count, time.monotonic()
        stop.wait(phase)
        assert not failures, failures
        assert worker.alive(), worker.stderr()[-3000:]
        return (ends.count - start) / (time.monotonic() - begun)

    try:
        stop.wait(3.0)  # warm up: connections, prepared statements, a steady backlog
        clean = measure()
        with psycopg.connect(project.plugin_env["NUVOM_POSTGRES__URL"], autocommit=False) as holder:
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT txid_current()")  # an assigned xid and a snapshot: xmin is held here
            held = measure()
            with psycopg.connect(project.plugin_env["NUVOM_POSTGRES__URL"], autocommit=True) as observer:
                horizon = observer.execute("SELECT age(backend_xmin) FROM pg_stat_activity WHERE pid = %s",
                                           (holder.info.backend_pid,)).fetchone()
                dead = observer.execute(
                    "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'jobs'",
                    (project.plugin_env["NUVOM_POSTGRES__SCHEMA"],)).fetchone()
            holder.rollback()
    finally:
        stop.set()
        producer.join(30)
    ratio = held / clean if clean else 0.0
    describe({"property": "xmin horizon held", "backend": "postgres", "seed": seed, "phase_s": phase,
              "clean_jobs_per_s": round(clean), "held_jobs_per_s": round(held), "ratio": round(ratio, 2),
              "xmin_age_at_end": horizon[0] if horizon else None, "hot_dead_tuples": dead[0] if dead else None})
    assert horizon is not None and horizon[0] is not None and int(horizon[0]) > 100, (
        f"the holding transaction did not hold the horizon back: {horizon}")
    assert ratio >= 0.7, f"throughput with xmin held back {held:.0f}/s vs clean {clean:.0f}/s ({ratio:.0%})"
    project.stop_all()
