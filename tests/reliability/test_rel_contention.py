"""R9: eight processes enqueuing and claiming on one SQLite file: no
``database is locked`` reaches a user, and the WAL stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliability.harness import HERE, Project, describe, size

#: The backend truncates the WAL once it is past 32 MB (at its next
#: checkpoint: every 1000 commits of a process, and on every sweep); between
#: two checkpoints eight busy writers can push it well past that.  Bounded
#: means: never past this peak, and back under the limit in every window.
WAL_LIMIT_BYTES = 32 * 1024 * 1024
WAL_PEAK_BOUND_BYTES = 384 * 1024 * 1024
WINDOW_SECS = 10.0


@pytest.mark.slow
def test_r9_eight_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    seconds = size(15, 60)
    project = Project(tmp_path / "proj", "sqlite")
    project.app.queue  # noqa: B018 - create the database first
    wal = project.root / ".nuvom" / "result.db-wal"
    procs = []
    for i in range(8):
        out = open(project.logs / f"contention-{i}.out", "wb")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen([sys.executable, str(HERE / "rel_contention.py"), str(seconds), f"proc{i}"],
                                       cwd=project.root, env=project.env(), stdout=out, stderr=subprocess.STDOUT),
                      out))
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    try:
        while any(p.poll() is None for p, _ in procs):
            samples.append((time.monotonic() - t0, wal.stat().st_size if wal.exists() else 0))
            time.sleep(0.1)
    finally:
        for p, out in procs:
            if p.poll() is None:
                p.kill()
            p.wait(60)
            out.close()
        project.close()
    reports = []
    for i, (p, _) in enumerate(procs):
        text = (project.logs / f"contention-{i}.out").read_text(encoding="utf-8", errors="replace")
        lines = [ln for ln in text.splitlines() if ln.startswith("{")]
        assert p.returncode == 0 and lines, f"proc{i} exited {p.returncode}:\n{text[-3000:]}"
        reports.append(json.loads(lines[-1]))
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
