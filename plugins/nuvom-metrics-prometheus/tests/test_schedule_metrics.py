"""Schedule fires counted by the scheduler processes that won them, merged at the scrape.

Two rounds of three ``nuvom runscheduler --once`` processes race over one
SQLite store whose schedules have a known number of due occurrences; the
scrape must show exactly the fires, misses and coalesced occurrences the
store recorded, and exactly the jobs the fires enqueued, however the
processes split the work.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from nuvom_metrics_prometheus.collector import make_registry
from nuvom_metrics_prometheus.plugin import metrics_dir
from prometheus_client.exposition import generate_latest
from prometheus_client.mmap_dict import MmapedDict

from nuvom_kernel.app import Nuvom
from nuvom_kernel.contracts import JobFilter
from nuvom_kernel.schedules import Schedule, ScheduleState

sys.path.insert(0, str(Path(__file__).parent))  # the truth test's helpers, under --import-mode=importlib

from test_metrics_truth import TASKS, by, env_for, parse  # noqa: E402

HOUR = 3600.0


def race(root: Path, processes: int = 3) -> None:
    """``processes`` schedulers started together, each firing what is due once."""
    racers = [subprocess.Popen([sys.executable, "-m", "nuvom_cli", "runscheduler", "--once"], cwd=root,
                               env=env_for(root), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
              for _ in range(processes)]
    for proc in racers:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out


def test_scrape_shows_exactly_the_fires_of_racing_scheduler_processes(tmp_path: Path) -> None:
    root = tmp_path
    (root / "mt_tasks.py").write_text(TASKS, encoding="utf-8")
    app = Nuvom(root=root, environ=env_for(root))
    now = time.time()
    # hourly occurrences from 9.5 h ago: 10 are due now, the 11th is half an hour away
    anchor = now - 9.5 * HOUR
    hourly = {"kind": "interval", "interval_secs": HOUR, "anchor": anchor, "next_fire_at": anchor, "task": "mt.add",
              "args": [1, 2]}
    schedules = [
        Schedule(id="every-hour-all", coalesce="all", catch_up_limit=1000, misfire_grace_secs=86400, **hourly),
        Schedule(id="every-hour-latest", coalesce="latest", misfire_grace_secs=86400, **hourly),
        Schedule(id="every-hour-strict", coalesce="all", misfire_grace_secs=40 * 60, **hourly),  # 9 too late
        Schedule(id="paused-hourly", coalesce="all", misfire_grace_secs=86400, **hourly),
        Schedule(id="one-off", task="mt.add", args=[3, 4], kind="at", at=now - 5, next_fire_at=now - 5,
                 misfire_grace_secs=HOUR),
    ]
    for schedule in schedules:
        app.schedules.add_schedule(schedule)
    app.schedules.set_schedule_state("paused-hourly", ScheduleState.PAUSED)
    race(root)
    # a second round of processes, for twenty one-offs added now: so at least two processes' files count
    for i in range(20):
        app.schedules.add_schedule(Schedule(id=f"burst-{i:02d}", task="mt.boom", kind="at", at=time.time() - 1,
                                            next_fire_at=time.time() - 1, misfire_grace_secs=HOUR))
    race(root)

    stored = {s.id: s for s in app.schedules.list_schedules()}
    # the store's own record of what happened, checked against the plan first
    assert stored["every-hour-all"].fire_count == 10
    assert (stored["every-hour-latest"].fire_count, stored["every-hour-latest"].coalesced_count) == (1, 9)
    assert (stored["every-hour-strict"].fire_count, stored["every-hour-strict"].missed_count) == (1, 9)
    assert stored["paused-hourly"].fire_count == 0 and stored["one-off"].fire_count == 1
    assert all(stored[f"burst-{i:02d}"].fire_count == 1 for i in range(20))
    jobs = {task: len(app.query_jobs(JobFilter(task=task), limit=1000).jobs) for task in ("mt.add", "mt.boom")}
    assert jobs == {"mt.add": 13, "mt.boom": 20}  # every fire enqueued exactly one job

    final = parse(generate_latest(make_registry(app, metrics_dir(root))).decode())
    fires = by(final, "nuvom_schedule_fires_total")
    assert fires == {(s.id, s.task): float(s.fire_count) for s in stored.values() if s.fire_count}
    assert sum(fires.values()) == sum(jobs.values()) == 33
    assert by(final, "nuvom_schedule_skips_total") == {("coalesced", "every-hour-latest", "mt.add"): 9.0,
                                                       ("missed", "every-hour-strict", "mt.add"): 9.0}
    # the fired jobs were counted as enqueued too (by the scheduler processes)
    enqueued = by(final, "nuvom_jobs_enqueued_total")
    assert enqueued == {("default", "mt.add"): 13.0, ("default", "mt.boom"): 20.0}
    # gauges from the schedule store
    assert by(final, "nuvom_schedules") == {("active",): 3.0, ("paused",): 1.0, ("done",): 21.0,
                                            ("cancelled",): 0.0}
    due = by(final, "nuvom_schedule_next_fire_timestamp_seconds")
    assert set(due) == {("every-hour-all", "mt.add"), ("every-hour-latest", "mt.add"), ("every-hour-strict", "mt.add")}
    assert all(v == anchor + 10 * HOUR for v in due.values())

    # the counts live in the racing processes' files, not in this one's
    writers = [f for f in sorted(metrics_dir(root).glob("counter_*.db"))
               if any('"nuvom_schedule_fires"' in key and value > 0
                      for key, value, _, _ in MmapedDict.read_all_values_from_file(str(f)))]
    assert 2 <= len(writers) <= 6, writers
    print(f"\nfire counts were written by {len(writers)} of 6 scheduler processes")
    app.close()
