"""R15: N scheduler processes, random kills: every occurrence fires exactly once.

Five processes run the scheduler loop on one store (SQLite, the file
backend, Redis and PostgreSQL, the last two on real servers started by
``sched_servers``) with a 1 s interval schedule and a ``* * * * *`` cron; a random one
is killed (``Popen.kill``: SIGKILL / TerminateProcess) every few tenths of a
second and restarted.  Each process logs every occurrence whose fire the
store accepted.  Afterwards:

- duplicate = an occurrence two fires claimed (two log lines): must be 0;
- missed = an occurrence between the first and the schedule's final position
  with no job in the store, or any counted as missed: must be 0 (the grace
  period, 60 s, is longer than any stall a kill causes; the file backend's
  lock of a killed fire goes stale after 3 s here).

Short by default (``NUVOM_SCHEDULER_CHAOS_SECS``, 15 s per backend); set it
to 180 or 600 for the 3- and 10-minute runs (``-k sqlite`` etc. for one
backend).
"""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nuvom_scheduler.timing import next_fire

from nuvom_kernel.app import Nuvom
from nuvom_kernel.schedules import Schedule, fire_job_id

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sched_servers import Servers  # noqa: E402

SECS = float(os.environ.get("NUVOM_SCHEDULER_CHAOS_SECS", "15"))
PROCESSES = 5


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    started = Servers(tmp_path_factory.mktemp("servers"))
    yield started
    started.close()


def env_for(root: Path, backend: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_PROJECT_ROOT=str(root), NUVOM_QUEUE_BACKEND=backend, NUVOM_RESULT_BACKEND=backend,
               NUVOM_FILE__LOCK_STALE_SECS="3", NUVOM_FILE__FSYNC="false", PYTHONUNBUFFERED="1",
               NUVOM_SCHEDULER__MISFIRE_GRACE_SECS="60", NUVOM_SCHEDULER__COALESCE="all",
               NUVOM_SCHEDULER__CATCH_UP_LIMIT="1000", **(extra or {}))
    return env


@pytest.mark.parametrize("backend", ["sqlite", "file", "redis", "postgres"])
def test_killed_and_restarted_schedulers_fire_each_occurrence_once(tmp_path: Path, backend: str,
                                                                   servers: Servers) -> None:
    seed = int(os.environ.get("NUVOM_RELIABILITY_SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"[chaos] {backend}: NUVOM_RELIABILITY_SEED={seed}, {SECS:g} s, {PROCESSES} schedulers", flush=True)
    rng = random.Random(seed)
    env = env_for(tmp_path, backend, servers.settings(backend))
    app = Nuvom(root=tmp_path, environ=env)
    start = time.time() + 2
    interval = Schedule(id="chaos-interval", task="chaos.tick", kind="interval", interval_secs=1.0, anchor=start,
                        next_fire_at=start)
    cron = Schedule(id="chaos-cron", task="chaos.minute", kind="cron", cron="* * * * *", timezone="UTC")
    cron.next_fire_at = next_fire(cron, start - 1)
    app.schedules.add_schedule(interval)
    app.schedules.add_schedule(cron)
    log_path = tmp_path / "fires.log"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(HERE / "sched_chaos_proc.py"), str(log_path), "0.2"],
                                cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    procs = [spawn() for _ in range(PROCESSES)]
    kills = 0
    try:
        deadline = time.time() + SECS
        while time.time() < deadline:
            time.sleep(rng.uniform(0.2, 1.0))
            victim = rng.randrange(PROCESSES)
            procs[victim].kill()
            procs[victim].wait()
            kills += 1
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, 1.5))  # a restart that takes a while
            procs[victim] = spawn()
        end = time.time()
        # no more kills: the survivors catch up on everything due before the end
        settle = time.time() + 90
        caught_up = False
        while not caught_up and time.time() < settle:
            positions = [app.schedules.get_schedule(s.id) for s in (interval, cron)]
            caught_up = all(p is not None and (p.next_fire_at or 0) > end for p in positions)
            time.sleep(0.2)
        assert caught_up, "the schedulers did not fire everything due before the end within 90 s"
    finally:
        for p in procs:
            p.kill()
            p.wait()
    lines = [line.split() for line in log_path.read_text().splitlines() if line.strip()]
    claims = collections.Counter(job_id for job_id, _pid in lines)
    duplicates = {job_id: n for job_id, n in claims.items() if n > 1}
    report = []
    for schedule in (interval, cron):
        stored = app.schedules.get_schedule(schedule.id)
        assert stored is not None
        expected = []
        t = schedule.next_fire_at
        while t is not None and t < (stored.next_fire_at or 0):
            expected.append(t)
            t = next_fire(schedule, t)
        jobs = [fire_job_id(schedule.id, t) for t in expected]
        missing = [job_id for job_id in jobs if app.jobs.get(job_id) is None]
        report.append(f"{schedule.id}: {len(expected)} occurrences, {stored.fire_count} fired, "
                      f"{len(missing)} without a job, {stored.missed_count} missed")
        assert not missing, f"{schedule.id}: occurrences with no job: {missing[:5]}"
        assert stored.missed_count == 0 and stored.fire_count == len(expected)
    print(f"[chaos] {backend}: {kills} kills, {len(claims)} fires logged, {len(duplicates)} duplicates; "
          + "; ".join(report), flush=True)
    assert not duplicates, f"occurrences fired twice: {duplicates}"
    assert kills >= 5
    app.close()
