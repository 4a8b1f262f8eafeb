"""R1 (crash safety under SIGKILL/TerminateProcess) and R2 (exactly once in
normal operation), with real worker processes on every backend (SQLite, file,
and Redis and PostgreSQL on this session's servers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reliability.checker import check, read_executions
from reliability.harness import (
    ALL_BACKENDS,
    BACKENDS,
    NET_BACKENDS,
    Project,
    describe,
    make_rng,
    size,
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_r1_random_kills_lose_nothing_and_every_duplicate_is_explained(
        backend: str, make_project: Callable[..., Project]) -> None:
    rng, seed = make_rng(f"R1[{backend}]")
    jobs, kills = size(2000, 10_000, backend=backend, net=500), size(20, 100, backend=backend, net=5)
    threads = 4
    project = make_project(backend)
    started = time.monotonic()
    enqueued: list[str] = []
    try:
        workers = [project.start_worker(concurrency=threads) for _ in range(2)]
        for w in workers:
            w.wait_ready()
        chunk = jobs // kills
        for k in range(kills):
            count = chunk if k < kills - 1 else jobs - len(enqueued)
            # default task settings: retries=0, the default lease-expiry budget
            enqueued += project.enqueue_work(count, rng, max_ms=8.0, start=len(enqueued), retries=0)
            time.sleep(rng.uniform(0.1, 0.5))
            ready = [w for w in project.live_workers() if w.is_ready()]
            if not ready:
                project.live_workers()[0].wait_ready()
                ready = project.live_workers()[:1]
            victim = rng.choice(ready)
            project.kill(victim)
            project.start_worker(concurrency=threads)
        kill_phase = time.monotonic() - started
        project.wait_drained(timeout=size(300, 900))
        project.stop_all()
        executions, torn = read_executions(project.exec_dir)
        final = project.final_jobs(enqueued)
        report = check(enqueued, executions, final, project.kills, torn)
    finally:
        project.close()
    duration = time.monotonic() - started
    # a job that did not succeed: its history, and where its code really ran (pid, token, ended)
    odd = [(j.id, j.state.value, j.attempts, j.lease_expiries, j.reason, [(t.state.value, t.note) for t in j.history],
            [(e.pid, e.token, e.ended_at is not None) for e in executions.get(j.id, [])])
           for j in final.values() if j is not None and j.state.value != "succeeded"]
    describe({"property": "R1", "backend": backend, "seed": seed, "jobs": len(enqueued), "kills": len(project.kills),
              "lost": len(report.lost), "duplicates": report.duplicate_count, "unexplained": len(report.unexplained),
              "dup_running": report.dup_running, "dup_finished": report.dup_finished, "duration_s": round(duration, 1), "kill_phase_s": round(kill_phase, 1)})
    detail = f"seed {seed}: {report.summary()} {report.examples()}"
    assert not report.lost and not report.unfinished, detail
    assert not report.unexplained and not report.phantom and not report.reused_tokens and not report.strangers, detail
    # A kill interrupts at most `threads` running attempts, and loses at most
    # NUVOM_MAX_UNRECORDED finished-but-unrecorded outcomes: every duplicate
    # together stays within kills x (threads + that bound).
    bound = threads + project.app.settings.max_unrecorded
    assert report.max_running_per_kill <= threads, detail
    assert report.duplicate_count <= len(project.kills) * bound, detail
    # with retries=0, every job succeeded: a worker's death never used a retry,
    # and no job died (above all none that never started)
    assert report.states == {"succeeded": len(enqueued)}, f"{detail}; not succeeded: {odd[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "processes"),
                         [(b, n) for b in BACKENDS for n in (2, 4)] + [(b, 4) for b in NET_BACKENDS])
def test_r2_several_processes_run_every_job_exactly_once(backend: str, processes: int,
                                                          make_project: Callable[..., Project]) -> None:
    rng, seed = make_rng(f"R2[{backend}, {processes} processes]")
    jobs = size(2000, 10_000, backend=backend, net=800)
    project = make_project(backend)
    started = time.monotonic()
    enqueued: list[str] = []
    try:
        for _ in range(processes):
            project.start_worker(concurrency=4)
        # half before the workers are up, half in bursts while they run
        enqueued += project.enqueue_work(jobs // 2, rng, max_ms=1.0)
        for w in project.workers:
            w.wait_ready()
        while len(enqueued) < jobs:
            enqueued += project.enqueue_work(min(jobs - len(enqueued), rng.randint(1, 200)), rng, max_ms=1.0,
                                             start=len(enqueued))
            time.sleep(rng.uniform(0, 0.02))
        project.wait_drained(timeout=size(300, 900))
        project.stop_all()
        executions, torn = read_executions(project.exec_dir)
        report = check(enqueued, executions, project.final_jobs(enqueued), project.kills, torn)
    finally:
        project.close()
    duration = time.monotonic() - started
    describe({"property": "R2", "backend": backend, "processes": processes, "seed": seed, "jobs": len(enqueued),
              "lost": len(report.lost), "duplicates": report.duplicate_count, "duration_s": round(duration, 1)})
    detail = f"seed {seed}: {report.summary()} {report.examples()}"
    assert not report.lost and not report.unfinished and not report.duplicates, detail
    assert not report.phantom and not report.strangers and report.torn_lines == 0, detail
    assert report.states == {"succeeded": len(enqueued)}, detail


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_r1_default_settings_three_workers_two_producers_lose_nothing(backend: str, tmp_path: Path) -> None:
    """Issue 16's measurement: 3 workers x 4 threads, 2 producer processes, a random
    worker killed every 0.5 s, jobs with default settings (retries=0): 0 lost,
    0 dead (none that never started), duplicates within the documented bound."""
    import subprocess
    import sys
    import threading

    from reliability.harness import HERE

    rng, seed = make_rng(f"R1-defaults[{backend}]")
    jobs, kills = size(3000, 20_000), size(10, 100)
    threads = 4
    project = Project(tmp_path / "proj", backend)
    started = time.monotonic()
    returned: list[str] = []
    lock = threading.Lock()
    try:
        project.app.queue  # noqa: B018 - create the storage before the producers race to
        for _ in range(3):
            project.start_worker(concurrency=threads)
        for w in project.live_workers():
            w.wait_ready()
        producers = []
        for k in range(2):
            err = open(project.logs / f"producer-{k}.stderr", "wb")  # noqa: SIM115 - closed below
            producers.append((subprocess.Popen(
                [sys.executable, str(HERE / "rel_producer.py"), str(jobs // 2)], cwd=project.root,
                env=project.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err), err))

        def read(proc: subprocess.Popen[bytes]) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                with lock:
                    returned.append(line.decode().strip())

        readers = [threading.Thread(target=read, args=(p,), daemon=True) for p, _ in producers]
        for r in readers:
            r.start()
        for _ in range(kills):
            time.sleep(0.5)
            ready = [w for w in project.live_workers() if w.is_ready()] or project.live_workers()[:1]
            project.kill(rng.choice(ready))
            project.start_worker(concurrency=threads)
        for (proc, err), reader in zip(producers, readers):
            assert proc.wait(600) == 0, (project.logs / "producer-0.stderr").read_text()[-2000:]
            reader.join(60)
            err.close()
        kill_phase = time.monotonic() - started
        project.wait_drained(timeout=size(300, 900))
        project.stop_all()
        executions, torn = read_executions(project.exec_dir)
        report = check(returned, executions, project.final_jobs(returned), project.kills, torn)
    finally:
        project.close()
    bound = threads + project.app.settings.max_unrecorded
    describe({"property": "R1-defaults", "backend": backend, "seed": seed, "jobs": len(returned),
              "kills": len(project.kills), "lost": len(report.lost), "duplicates": report.duplicate_count,
              "bound": len(project.kills) * bound, "states": report.states,
              "duration_s": round(time.monotonic() - started, 1), "kill_phase_s": round(kill_phase, 1)})
    detail = f"seed {seed}: {report.summary()} {report.examples()}"
    assert len(returned) == jobs
    assert not report.lost and not report.unfinished, detail
    assert not report.unexplained and not report.phantom and not report.reused_tokens, detail
    assert report.states == {"succeeded": jobs}, detail  # none dead, above all none that never started
    assert report.duplicate_count <= len(project.kills) * bound, detail
