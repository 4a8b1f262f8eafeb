"""R9: eight processes enqueuing and claiming on one store: no error reaches a
user (on SQLite above all no ``database is locked``), and what the store
keeps growing stays bounded (SQLite: the WAL; PostgreSQL: finished jobs in
the hot table)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import pytest

from reliability.harness import HERE, Project, describe, size

#: The backend truncates the WAL once it is past 32 MB (at its next
#: checkpoint: every 1000 commits of a process, and on every sweep); between
#: two checkpoints eight busy writers can push it well past that.  Bounded
#: means: never past this peak, and back under the limit in every window.
WAL_LIMIT_BYTES = 32 * 1024 * 1024
WAL_PEAK_BOUND_BYTES = 384 * 1024 * 1024
WINDOW_SECS = 10.0


def _start(project: Project, seconds: float) -> list[tuple[subprocess.Popen[bytes], IO[bytes]]]:
    procs = []
    for i in range(8):
        out = open(project.logs / f"contention-{i}.out", "wb")  # noqa: SIM115 - closed by _reap
        procs.append((subprocess.Popen([sys.executable, str(HERE / "rel_contention.py"), str(seconds), f"proc{i}"],
                                       cwd=project.root, env=project.env(), stdout=out, stderr=subprocess.STDOUT),
                      out))
    return procs


def _reap(procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]]) -> None:
    for p, out in procs:
        if p.poll() is None:
            p.kill()
        p.wait(60)
        out.close()


def _reports(project: Project, procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]]) -> list[dict[str, Any]]:
    """Each process's last JSON line (it must have exited 0)."""
    reports = []
    for i, (p, _) in enumerate(procs):
        text = (project.logs / f"contention-{i}.out").read_text(encoding="utf-8", errors="replace")
        lines = [ln for ln in text.splitlines() if ln.startswith("{")]
        assert p.returncode == 0 and lines, f"proc{i} exited {p.returncode}:\n{text[-3000:]}"
        reports.append(json.loads(lines[-1]))
    return reports


@pytest.mark.slow
def test_r9_eight_processes_on_one_sqlite_file(make_project: Callable[..., Project]) -> None:
    seconds = size(15, 60)
    project = make_project("sqlite")
    project.app.queue  # noqa: B018 - create the database first
    wal = project.root / ".nuvom" / "result.db-wal"
    procs = _start(project, seconds)
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    try:
        while any(p.poll() is None for p, _ in procs):
            samples.append((time.monotonic() - t0, wal.stat().st_size if wal.exists() else 0))
            time.sleep(0.1)
    finally:
        _reap(procs)
        project.close()
    reports = _reports(project, procs)
    sizes = [b for _, b in samples]
    peak = max(sizes, default=0)
    second_half = sizes[len(sizes) // 2:]
    windows = int(samples[-1][0] // WINDOW_SECS) if samples else 0
    stuck = [w for w in range(windows)
             if min(b for t, b in samples if w * WINDOW_SECS <= t < (w + 1) * WINDOW_SECS) > WAL_LIMIT_BYTES]
    describe({"property": "R9", "processes": 8, "seconds": seconds,
              "enqueue_calls": sum(r["enqueue_calls"] for r in reports),
              "finished": sum(r["finished"] for r in reports), "locked_errors": sum(r["locked"] for r in reports),
              "wal_peak_mb": round(peak / 2**20, 1),
              "wal_peak_second_half_mb": round(max(second_half, default=0) / 2**20, 1)})
    assert all(r["error_count"] == 0 for r in reports), [r["errors"] for r in reports if r["errors"]]
    assert all(r["finished"] > 0 and r["enqueue_calls"] > 0 for r in reports), reports
    assert peak <= WAL_PEAK_BOUND_BYTES, f"WAL peaked at {peak / 2**20:.1f} MB"
    assert not stuck, f"the WAL stayed over {WAL_LIMIT_BYTES / 2**20:.0f} MB for whole {WINDOW_SECS:.0f}-s windows {stuck}"


#: PostgreSQL: finished jobs leave the hot table after keep_hot_secs (1 s here) at
#: the next maintenance; this process plays a worker's sweeper and runs one every
#: MAINTAIN_EVERY_SECS.  Bounded means: in every window but the first, the oldest
#: finished job in the hot table is at some moment younger than HOT_AGE_BOUND_SECS
#: (the eight writers never starve the mover).
KEEP_HOT_SECS = 1.0
MAINTAIN_EVERY_SECS = 1.0
HOT_AGE_BOUND_SECS = 5.0
PG_WINDOW_SECS = 5.0


@pytest.mark.slow
def test_r9_eight_processes_on_one_postgres_schema(make_project: Callable[..., Project]) -> None:
    import psycopg
    from nuvom_backend_postgres import PostgresBackend

    seconds = size(15, 60, backend="postgres", net=10)
    project = make_project("postgres", plugin_env={"NUVOM_POSTGRES__KEEP_HOT_SECS": repr(KEEP_HOT_SECS)})
    project.app.queue.counts()  # create the schema first (a backend opens on first use)
    url, schema = project.plugin_env["NUVOM_POSTGRES__URL"], project.plugin_env["NUVOM_POSTGRES__SCHEMA"]
    mover = PostgresBackend(url, schema=schema, keep_hot_secs=KEEP_HOT_SECS, maintenance_secs=MAINTAIN_EVERY_SECS)
    probe = psycopg.connect(url, autocommit=True)
    procs = _start(project, seconds)
    samples: list[tuple[float, int, float]] = []  # (t, finished rows in the hot table, oldest one's age)
    moved = 0
    t0 = time.monotonic()
    last_maintain = t0
    try:
        while any(p.poll() is None for p, _ in procs):
            row = probe.execute(
                f'SELECT count(*), coalesce(extract(epoch FROM clock_timestamp()) - min(finished_at), 0) '
                f'FROM "{schema}".jobs WHERE finished_at IS NOT NULL').fetchone()
            assert row is not None
            samples.append((time.monotonic() - t0, int(row[0]), float(row[1])))
            if time.monotonic() - last_maintain >= MAINTAIN_EVERY_SECS:
                last_maintain = time.monotonic()
                moved += mover.maintain()["moved"]
            time.sleep(0.1)
    finally:
        _reap(procs)
        probe.close()
        mover.close()
        project.close()
    reports = _reports(project, procs)
    windows = int(samples[-1][0] // PG_WINDOW_SECS) if samples else 0
    stuck = [w for w in range(1, windows)
             if min(age for t, _, age in samples if w * PG_WINDOW_SECS <= t < (w + 1) * PG_WINDOW_SECS)
             > HOT_AGE_BOUND_SECS]
    describe({"property": "R9", "backend": "postgres", "processes": 8, "seconds": seconds,
              "enqueue_calls": sum(r["enqueue_calls"] for r in reports),
              "finished": sum(r["finished"] for r in reports), "errors": sum(r["error_count"] for r in reports),
              "moved_to_history": moved, "hot_finished_peak": max((n for _, n, _ in samples), default=0),
              "hot_oldest_finished_peak_s": round(max((a for _, _, a in samples), default=0.0), 1)})
    assert all(r["error_count"] == 0 for r in reports), [r["errors"] for r in reports if r["errors"]]
    assert all(r["finished"] > 0 and r["enqueue_calls"] > 0 for r in reports), reports
    assert moved > 0, "no finished job ever moved to the history table"
    assert not stuck, (f"finished jobs older than {HOT_AGE_BOUND_SECS:.0f} s stayed in the hot table for whole "
                       f"{PG_WINDOW_SECS:.0f}-s windows {stuck}: the history mover starved")
