"""Scratch micro-benchmark of the SQLite backend, in one process (not a test).

    PYTHONPATH=. .venv/bin/python bench/sqlite_claim_bench.py [--jobs 10000]

Prints jobs/s for: enqueue one at a time, enqueue_many of N, and a drain loop
that finishes the previous batch and claims the next in one ``exchange``
(batch 32), for synchronous=NORMAL and FULL and both claim paths.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nuvom_backend_sqlite import SqliteBackend

from nuvom_kernel.contracts import Completion
from nuvom_kernel.models import Job, Outcome


def run(path: Path, synchronous: str, use_returning: bool, jobs: int, single: int) -> dict[str, float]:
    backend = SqliteBackend(path, synchronous=synchronous, use_returning=use_returning)
    started = time.perf_counter()
    for i in range(single):
        backend.enqueue(Job(task="bench.noop", args=[i]))
    single_rate = single / (time.perf_counter() - started)

    batch = [Job(task="bench.noop", args=[i]) for i in range(jobs)]
    started = time.perf_counter()
    backend.enqueue_many(batch)
    many_secs = time.perf_counter() - started

    total = jobs + single
    done = 0
    pending: list[Completion] = []
    started = time.perf_counter()
    while True:
        accepted, claimed, _ = backend.exchange(pending, ["default"], 32, 60.0, "bench", start_now=32)
        done += sum(accepted)
        pending = [Completion(j.id, j.token or 0, Outcome(kind="succeeded", result=None)) for j in claimed]
        if not claimed and not pending:
            break
    drain_rate = total / (time.perf_counter() - started)
    assert done == total, (done, total)
    backend.close()
    return {"enqueue_one": single_rate, "enqueue_many_secs": many_secs, "drain": drain_rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'mode':<22}{'enqueue one (jobs/s)':>22}{'enqueue_many ' + str(args.jobs) + ' (s)':>24}{'exchange drain b32 (jobs/s)':>30}")
    for synchronous in ("NORMAL", "FULL"):
        for use_returning in (True, False):
            results = []
            for n in range(args.repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    results.append(run(Path(tmp) / f"b{n}.db", synchronous, use_returning, args.jobs, args.single))
            med = {k: statistics.median(r[k] for r in results) for k in results[0]}
            label = f"{synchronous} {'returning' if use_returning else 'fallback'}"
            print(f"{label:<22}{med['enqueue_one']:>22,.0f}{med['enqueue_many_secs']:>24.3f}{med['drain']:>30,.0f}")


if __name__ == "__main__":
    main()
