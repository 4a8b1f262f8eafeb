"""Real processes: a known workload through two burst workers and one serving worker,
then every counter and gauge compared to what happened and to the store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from nuvom_metrics_prometheus.collector import make_registry
from nuvom_metrics_prometheus.plugin import metrics_dir
from prometheus_client.exposition import generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState

TASKS = '''
import time
from pathlib import Path

from nuvom import current_job, task


@task(name="mt.add")
def add(a, b):
    time.sleep(0.01)  # both workers of the pair get some
    return a + b


@task(name="mt.flaky", retries=1, retry_delay_secs=0)
def flaky(marker):
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise ConnectionError("first attempt fails")
    return "ok"


@task(name="mt.boom", retries=1, retry_delay_secs=0)
def boom():
    raise ValueError("always")


@task(name="mt.hold", timeout_secs=60)
def hold():
    current_job().cancel_event.wait(60)  # until it is cancelled
    return "cancelled"
'''

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def env_for(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_PROJECT_ROOT=str(root), PYTHONUNBUFFERED="1", NUVOM_LEASE_SECS="5",
               NUVOM_POLL_INTERVAL_SECS="0.1")
    return env


def worker(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "nuvom_cli", "runworker", "--tasks", "mt_tasks.py",
                             "--no-manifest", *args], cwd=root, env=env_for(root), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop_all(root: Path) -> None:
    subprocess.run([sys.executable, "-m", "nuvom_cli", "stop", "--all"], cwd=root, env=env_for(root),
                   check=True, capture_output=True)


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def by(samples: Samples, name: str, **fixed: str) -> dict[tuple[str, ...], float]:
    """``name``'s samples matching ``fixed`` labels, keyed by their other label values (sorted by name)."""
    out = {}
    for (sample, labels), value in samples.items():
        d = dict(labels)
        if sample == name and all(d.get(k) == v for k, v in fixed.items()):
            out[tuple(v for k, v in labels if k not in fixed)] = value
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_every_counter_and_gauge_matches_the_workload_across_worker_processes(tmp_path: Path) -> None:
    root = tmp_path
    (root / "mt_tasks.py").write_text(textwrap.dedent(TASKS))
    app = Nuvom(root=root, environ=env_for(root))
    plan = {("mt.add", "default"): 30, ("mt.add", "other"): 10, ("mt.flaky", "default"): 4,
            ("mt.boom", "other"): 3, ("mt.nope", "default"): 2}
    jobs = []
    for (task, queue), n in plan.items():
        for i in range(n):
            args = [i, 1] if task == "mt.add" else [str(root / f"flaky-{i}")] if task == "mt.flaky" else []
            jobs.append(Job(task=task, queue=queue, args=args,
                            max_retries=1 if task in ("mt.flaky", "mt.boom") else 0, retry_delay_secs=0))
    # two workers, both up before the first job, drain default and other between them
    pair = [worker(root, "-q", "default,other", "-c", "2") for _ in range(2)]
    try:
        wait_for(lambda: len([w for w in app.workers.list_workers() if w.state == "running"]) == 2,
                 "two workers to register")
        app.enqueue_many(jobs)
        busy = (JobState.QUEUED.value, JobState.SCHEDULED.value, JobState.CLAIMED.value, JobState.RUNNING.value)
        wait_for(lambda: not any(n for q in ("default", "other") for s, n in app.jobs.counts().get(q, {}).items()
                                 if s in busy), "the workload to finish", timeout=90)
        stop_all(root)
        for proc in pair:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, out
    finally:
        for proc in pair:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    idle = [app.enqueue(Job(task="mt.add", queue="idle", args=[0, 0])) for _ in range(3)]  # nobody consumes "idle"

    # a third worker serves /metrics while it holds one job
    port = free_port()
    serving = worker(root, "-q", "default", "-c", "3", "--metrics-port", str(port))
    try:
        held = app.enqueue(Job(task="mt.hold", queue="default"))
        wait_for(lambda: app.get_job(held.id).state == JobState.RUNNING or serving.poll() is not None,
                 f"the held job to run ({held.id})")
        assert serving.poll() is None, serving.communicate()[0]
        live = parse(scrape(f"http://127.0.0.1:{port}/metrics"))
        assert live[("nuvom_workers_up", ())] == 1.0
        assert live[("nuvom_worker_slots", ())] == 3.0
        assert live[("nuvom_worker_slots_busy", ())] == 1.0, (app.jobs.counts(), live)
        assert by(live, "nuvom_jobs", state="running") == {("default",): 1.0, ("idle",): 0.0, ("other",): 0.0}
        app.cancel_job(held.id)
        wait_for(lambda: app.get_job(held.id).state == JobState.CANCELLED, "the held job to be cancelled")
        stop_all(root)
        out, _ = serving.communicate(timeout=60)
        assert serving.returncode == 0, out
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()

    # the truth: what each job went through
    started: Counter[tuple[str, str]] = Counter()
    finished: Counter[tuple[str, str, str]] = Counter()
    enqueued: Counter[tuple[str, str]] = Counter()
    for (task, queue), n in plan.items():
        enqueued[(queue, task)] += n
        if task == "mt.add":
            started[(queue, task)] += n
            finished[("succeeded", queue, task)] += n
        elif task == "mt.flaky":  # fails once, then succeeds
            started[(queue, task)] += 2 * n
            finished[("retried", queue, task)] += n
            finished[("succeeded", queue, task)] += n
        elif task == "mt.boom":  # fails twice: retried, then failed
            started[(queue, task)] += 2 * n
            finished[("retried", queue, task)] += n
            finished[("failed", queue, task)] += n
        else:  # unknown task: dead-lettered, never started
            finished[("dead", queue, task)] += n
    enqueued[("idle", "mt.add")] += len(idle)
    enqueued[("default", "mt.hold")] += 1
    started[("default", "mt.hold")] += 1
    finished[("cancelled", "default", "mt.hold")] += 1

    text = generate_latest(make_registry(app, metrics_dir(root))).decode()
    final = parse(text)
    assert by(final, "nuvom_jobs_enqueued_total") == {k: float(v) for k, v in enqueued.items()}
    assert by(final, "nuvom_jobs_started_total") == {k: float(v) for k, v in started.items()}
    assert by(final, "nuvom_jobs_finished_total") == {k: float(v) for k, v in finished.items()}
    assert final.get(("nuvom_lease_expiries_total", ()), 0.0) == 0.0  # no worker died
    for histogram in ("nuvom_job_run_seconds", "nuvom_job_queue_wait_seconds"):
        # every started attempt is observed once; an attempt that never ran is not
        assert by(final, f"{histogram}_count") == {k: float(v) for k, v in started.items()}, histogram
        assert by(final, f"{histogram}_bucket", le="+Inf") == {k: float(v) for k, v in started.items()}
        assert all(v >= 0 for v in by(final, f"{histogram}_sum").values())
    hold_runs = by(final, "nuvom_job_run_seconds_sum")[("default", "mt.hold")]
    assert hold_runs > 0

    # gauges: the store is the truth
    counts = app.jobs.counts()
    expected_depth = {(q, s.value): float(counts.get(q, {}).get(s.value, 0)) for q in counts for s in JobState}
    assert by(final, "nuvom_jobs") == expected_depth
    assert expected_depth[("idle", "queued")] == 3.0 and expected_depth[("default", "dead")] == 2.0
    oldest = app.jobs.oldest_queued_at()
    assert oldest is not None
    age = final[("nuvom_oldest_queued_job_age_seconds", ())]
    assert age > 0 and abs(age - (time.time() - oldest)) < 5  # the scrape was a moment ago
    assert final[("nuvom_workers_up", ())] == 0.0  # all three stopped
    assert final[("nuvom_worker_slots", ())] == 0.0
    assert final[("nuvom_worker_slots_busy", ())] == 0.0
    assert final[("nuvom_store_up", ())] == 1.0
    # three worker processes and this one (the producer) wrote their own files, and
    # both workers of the pair started attempts: the totals above are sums over processes
    files = sorted(metrics_dir(root).glob("counter_*.db"))
    assert len(files) == 4, files
    starters = [f for f in files if any('"nuvom_jobs_started"' in key and value > 0
                                        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(f)))]
    assert len(starters) == 3, starters
    app.close()


def test_a_worker_refuses_to_serve_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    (tmp_path / "mt_tasks.py").write_text(textwrap.dedent(TASKS))
    env = {**env_for(tmp_path), "NUVOM_PROMETHEUS__HOST": "0.0.0.0"}
    proc = subprocess.run([sys.executable, "-m", "nuvom_cli", "runworker", "--burst", "--tasks", "mt_tasks.py",
                           "--metrics-port", "0"], cwd=tmp_path, env=env, text=True, capture_output=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "NUVOM_PROMETHEUS__TOKEN" in proc.stderr and "0.0.0.0" in proc.stderr, proc.stderr


def test_the_011_port_variable_makes_a_worker_serve(tmp_path: Path) -> None:
    (tmp_path / "mt_tasks.py").write_text(textwrap.dedent(TASKS))
    port = free_port()
    env = {**env_for(tmp_path), "NUVOM_PROMETHEUS_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "nuvom_cli", "runworker", "--tasks", "mt_tasks.py",
                             "--no-manifest"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            try:
                return "nuvom_workers_up" in scrape(f"http://127.0.0.1:{port}/metrics")
            except (urllib.error.URLError, ConnectionError):
                return False
        wait_for(up, "the worker's metrics endpoint")
        stop_all(tmp_path)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "NUVOM_PROMETHEUS_PORT" not in out  # no "has no effect" warning: the plugin reads it
    assert f"127.0.0.1:{port}/metrics" in out
