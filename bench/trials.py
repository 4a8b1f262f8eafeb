"""One benchmark trial in a fresh process; prints one JSON object.  Used by run.py.

    python bench/trials.py SYSTEM MEASURE

SYSTEM: nuvom-memory, nuvom-file, nuvom-file-nosync (``NUVOM_FILE__FSYNC=false``,
FileHuey's durability), nuvom-sqlite, nuvom-sqlite-full,
nuvom-sqlite-v4idx (SQLite with schema version 4's listing indexes instead of
version 5's, to measure what those cost), huey-memory, huey-file, huey-sqlite,
plain-threads (drain_nap only: 4 threads taking items from a list, no queue at
all: what this machine's ``time.sleep(0.01)`` allows).  MEASURE: enqueue_one,
enqueue_batch, drain_noop, drain_noop_1k, drain_nap, latency200, latency5,
idle, startup, help.

Nuvom loads the plugins ``pip install nuvom`` installs (the dependencies of
distributions/nuvom), not the optional ones a development venv also has
(Prometheus metrics, JSON logs, ...): Huey runs with none.  Set
``BENCH_ALL_PLUGINS=1`` to load every installed plugin instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from latency import percentiles, send_at_rate

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
THREADS = 4
ENQUEUE_ONE = 2_000
BATCH = 10_000


def default_plugins() -> list[str]:
    """The plugins ``pip install nuvom`` brings: the ``nuvom`` distribution's dependencies."""
    text = (BENCH.parent / "distributions" / "nuvom" / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    return [n for n in re.findall(r'"(nuvom-[a-z0-9-]+)', deps) if n != "nuvom-kernel"]


def env_for(system: str, tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    family, _, kind = system.partition("-")
    if family == "huey":
        env["BENCH_HUEY_KIND"] = kind
        env["BENCH_HUEY_PATH"] = tmp
    else:
        backend = kind.split("-")[0]
        env.update(NUVOM_QUEUE_BACKEND=backend, NUVOM_RESULT_BACKEND=backend, NUVOM_LOG_LEVEL="INFO",
                   NUVOM_PROJECT_ROOT=tmp, NUVOM_MAX_WORKERS=str(THREADS))
        env["NUVOM_SQLITE_SYNCHRONOUS"] = "FULL" if kind.endswith("-full") else "NORMAL"
        if kind.endswith("-nosync"):  # FileHuey's durability: no fsync
            env["NUVOM_FILE__FSYNC"] = "false"
        if not env.get("BENCH_ALL_PLUGINS"):
            env["NUVOM_LOAD_PLUGINS"] = ",".join(default_plugins())
    return env


# -- in-process systems ----------------------------------------------------------


class NuvomSide:
    def __init__(self, system: str, tmp: str) -> None:
        os.environ.update(env_for(system, tmp))
        os.environ["NUVOM_LOG_LEVEL"] = "WARNING"
        from nuvom import Nuvom, set_default_app

        self.app = Nuvom(root=tmp)
        set_default_app(self.app)
        self.app.plugins.load()
        self.app.plugins.load_spec("bench_nuvom_tasks")
        if system.endswith("-v4idx"):
            version_4_indexes(self.app)
        import bench_nuvom_tasks as tasks

        self.tasks = tasks

    def enqueue_one(self, n: int) -> None:
        noop = self.tasks.noop
        for i in range(n):
            noop.delay(i)

    def enqueue_batch(self, n: int, name: str = "noop") -> None:
        getattr(self.tasks, name).map(range(n))

    def drain(self, n: int) -> float:
        from nuvom import Worker

        self.tasks.expect(n)
        worker = Worker(self.app, concurrency=THREADS)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        worker.wait_ready()
        started = time.perf_counter()
        self.tasks.all_done.wait()
        took = time.perf_counter() - started
        worker.request_stop()
        thread.join()
        return took


def version_4_indexes(app: Any) -> None:
    """Put back the one listing index schema version 4 had (``created_at``) in place
    of version 5's three, so a run can compare both on the same code."""
    import sqlite3

    from nuvom_backend_sqlite.schema import LISTING_INDEXES

    path = app.queue.db.path  # creates the file with today's schema
    conn = sqlite3.connect(path)
    for statement in LISTING_INDEXES:
        conn.execute("DROP INDEX IF EXISTS " + statement.split(" ON ")[0].split()[-1])
    conn.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)")
    conn.commit()
    conn.close()


class HueySide:
    def __init__(self, system: str, tmp: str) -> None:
        os.environ.update(env_for(system, tmp))
        import bench_huey_tasks as tasks

        self.tasks = tasks
        if system == "huey-sqlite":  # state the durability Huey really runs with
            conn = tasks.huey.storage.conn
            self.pragmas = {"journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                            "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0]}

    def enqueue_one(self, n: int) -> None:
        noop = self.tasks.noop
        for i in range(n):
            noop(i)

    def enqueue_batch(self, n: int, name: str = "noop") -> None:
        getattr(self.tasks, name).map(range(n))

    def drain(self, n: int) -> float:
        self.tasks.expect(n)
        consumer = self.tasks.huey.create_consumer(workers=THREADS, worker_type="thread")
        consumer.start()
        started = time.perf_counter()  # consumer ready (threads running)
        self.tasks.all_done.wait()
        took = time.perf_counter() - started
        consumer.stop(graceful=True)
        return took


class PlainSide:
    """No queue: 4 threads take the items from a list and call the task (the ideal)."""

    def __init__(self, system: str, tmp: str) -> None:
        self.items: list[int] = []

    def enqueue_batch(self, n: int, name: str = "nap") -> None:
        assert name == "nap", "plain-threads runs drain_nap only"
        self.items = list(range(n))

    def drain(self, n: int) -> float:
        take = iter(self.items).__next__  # one call: atomic under the GIL

        def work() -> None:
            while True:
                try:
                    take()
                except StopIteration:
                    return
                time.sleep(0.01)  # what bench_nuvom_tasks.nap and bench_huey_tasks.nap do

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started


def in_process(system: str, measure: str, tmp: str) -> dict[str, Any]:
    side: Any = (HueySide(system, tmp) if system.startswith("huey") else
                 PlainSide(system, tmp) if system == "plain-threads" else NuvomSide(system, tmp))
    out: dict[str, Any] = {}
    if measure == "enqueue_one":
        t = time.perf_counter()
        side.enqueue_one(ENQUEUE_ONE)
        out["value"] = ENQUEUE_ONE / (time.perf_counter() - t)
    elif measure == "enqueue_batch":
        t, cpu = time.perf_counter(), time.process_time()
        side.enqueue_batch(BATCH)
        out["value"] = time.perf_counter() - t
        out["cpu_secs"] = time.process_time() - cpu
    elif measure in ("drain_noop", "drain_noop_1k", "drain_nap"):
        n = {"drain_noop": BATCH, "drain_noop_1k": 1_000, "drain_nap": 1_000}[measure]
        side.enqueue_batch(n, "nap" if measure == "drain_nap" else "noop")
        cpu = time.process_time()
        took = side.drain(n)
        out["value"] = n / took
        out["secs"] = took
        out["cpu_us_per_job"] = (time.process_time() - cpu) / n * 1e6  # includes start/stop
    else:
        raise SystemExit(f"unknown in-process measure {measure}")
    if getattr(side, "pragmas", None):
        out["pragmas"] = side.pragmas
    return out


# -- worker in its own process ---------------------------------------------------


def worker_cmd(system: str) -> tuple[list[str], str]:
    if system.startswith("huey"):
        return [str(BIN / "huey_consumer"), "bench_huey_tasks.huey", "-w", str(THREADS), "-k", "thread"], "consumer started"
    return [str(BIN / "nuvom"), "runworker", "-c", str(THREADS), "-t", "bench_nuvom_tasks", "--no-manifest"], " ready: "


def start_worker(system: str, tmp: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], float]:
    cmd, ready_text = worker_cmd(system)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if ready_text in line:
            took = time.perf_counter() - t
            threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()
            return proc, took
    raise SystemExit(f"{system} worker exited before it was ready (exit code {proc.wait()})")


def stop_worker(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def latency(system: str, tmp: str, rate: float, count: int) -> dict[str, Any]:
    env = env_for(system, tmp)
    lat_file = Path(tmp) / "latency.txt"
    env["BENCH_LAT_FILE"] = str(lat_file)
    os.environ.update(env)
    proc, _ = start_worker(system, tmp, env)
    try:
        if system.startswith("huey"):
            import bench_huey_tasks as htasks

            def send(sent: float) -> None:
                htasks.stamp(sent)
        else:
            os.environ["NUVOM_LOG_LEVEL"] = "WARNING"
            from nuvom import Nuvom, set_default_app

            set_default_app(Nuvom(root=tmp))
            import bench_nuvom_tasks as ntasks

            def send(sent: float) -> None:
                ntasks.stamp.delay(sent)

        time.sleep(0.5)  # let the worker settle into its idle state
        lags = send_at_rate(send, count, rate, lat_file)
        rss = peak_rss_mb(proc.pid)
    finally:
        stop_worker(proc)
    return {**percentiles(system, lags, count), "rss_mb": rss}


def idle(system: str, tmp: str, secs: float = 10.0) -> dict[str, Any]:
    import psutil

    env = env_for(system, tmp)
    proc, _ = start_worker(system, tmp, env)
    try:
        time.sleep(1.0)
        p = psutil.Process(proc.pid)
        before = p.cpu_times()
        time.sleep(secs)
        after = p.cpu_times()
        rss = p.memory_info().rss / 2**20
    finally:
        stop_worker(proc)
    used = (after.user - before.user) + (after.system - before.system)
    return {"value": 100 * used / secs, "rss_mb": rss}


def startup(system: str, tmp: str) -> dict[str, Any]:
    env = env_for(system, tmp)
    proc, took = start_worker(system, tmp, env)
    stop_worker(proc)
    return {"value": took}


def cli_help(system: str, tmp: str) -> dict[str, Any]:
    cmd = [str(BIN / "huey_consumer"), "--help"] if system.startswith("huey") else [str(BIN / "nuvom"), "--help"]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=tmp, env=env_for(system, tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return {"value": time.perf_counter() - t}


def main() -> None:
    system, measure = sys.argv[1], sys.argv[2]
    sys.path.insert(0, str(BENCH))
    # a worker thread may still write there while the directory is removed: the figure stands
    with tempfile.TemporaryDirectory(prefix="nuvom-bench-", ignore_cleanup_errors=True) as tmp:
        if measure == "latency200":
            out = latency(system, tmp, 200.0, 1000)
        elif measure == "latency5":
            out = latency(system, tmp, 5.0, 50)
        elif measure == "idle":
            out = idle(system, tmp)
        elif measure == "startup":
            out = startup(system, tmp)
        elif measure == "help":
            out = cli_help(system, tmp)
        else:
            out = in_process(system, measure, tmp)
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (daemon threads of the systems under test)


if __name__ == "__main__":
    main()
