"""Page times of the dashboard on a SQLite store of 100,000 jobs (run by hand).

    .venv/bin/python bench/dashboard_pages.py [--jobs 100000] [--finished 20000] [--rounds 20] [--keep DIR]

Fills a fresh store (jobs created over the last 6 hours, the oldest ``--finished``
run to an end: 1 in 10 failed, 1 in 100 dead), reopens it as a new process
would, then GETs every page ``--rounds`` times through Starlette's TestClient
(the ASGI app in process: the figures are the dashboard and the store, no
network) and prints p50 and p95 per page.  The test suite runs the same pages
with a generous bound (plugins/nuvom-dashboard/tests/test_dashboard_perf.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "nuvom-dashboard" / "tests"))

from dashboard_support import Client, fill_store, make_app, page_times, sample_paths  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--finished", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="store directory to reuse (filled when empty)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="nuvom-dash-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    app = make_app(root)
    if not app.jobs.counts():
        fill_store(app, total=args.jobs, finished=args.finished)
    app.close()
    app = make_app(root)  # as the dashboard process would open it
    try:
        times = page_times(Client(app), sample_paths(app), rounds=args.rounds)
    finally:
        app.close()
    print(f"{'page':62s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for path, (p50, p95) in times.items():
        print(f"{path[:62]:62s} {p50 * 1000:8.1f} {p95 * 1000:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
