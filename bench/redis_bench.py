"""Nuvom's Redis backend against Dramatiq's Redis broker and RQ, same server, same run.

    .venv/bin/pip install -r bench/requirements.txt "dramatiq[redis]" rq
    .venv/bin/python bench/redis_bench.py                 # median of 3
    .venv/bin/python bench/redis_bench.py --reps 1 --jobs 2000

Starts one ``redis-server`` (no persistence, a free 127.0.0.1 port) for the
whole run.  Each trial is a fresh process (``--trial SYSTEM``) that empties
the server, enqueues ``--jobs`` no-op jobs, then times one worker with 4
threads from ready to the last job done:

- ``nuvom-redis``: ``nuvom.Worker(concurrency=4)`` in the process, the redis
  backend; done = a ``nuvom_job_finished`` observer counted them all;
- ``dramatiq-redis``: ``dramatiq.Worker(RedisBroker, worker_threads=4)``, every
  option at its default; done = the actor ran them all;
- ``rq``: ``rq.Worker(...).work(burst=True)`` (RQ's default worker: one
  process, a forked child per job; RQ has no threads); done = burst returned.

Systems are interleaved within a repetition and their order rotated between
repetitions.  Prints one table (median jobs/s and the ratio nuvom / peer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SYSTEMS = ["nuvom-redis", "dramatiq-redis", "rq"]
THREADS = 4
HERE = Path(__file__).resolve().parent


def trial_nuvom(url: str, jobs: int) -> float:
    tmp = tempfile.mkdtemp(prefix="nuvom-redis-bench-")
    os.environ.update(NUVOM_QUEUE_BACKEND="redis", NUVOM_RESULT_BACKEND="redis", NUVOM_REDIS__URL=url,
                      NUVOM_PROJECT_ROOT=tmp, NUVOM_LOG_LEVEL="WARNING")
    sys.path.insert(0, str(HERE))
    from nuvom import Nuvom, Worker, set_default_app

    app = Nuvom(root=tmp)
    set_default_app(app)
    app.plugins.load()
    app.plugins.load_spec("bench_nuvom_tasks")
    import bench_nuvom_tasks as tasks

    tasks.noop.map(range(jobs))
    tasks.expect(jobs)
    worker = Worker(app, concurrency=THREADS)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    worker.wait_ready()
    started = time.perf_counter()
    tasks.all_done.wait()
    took = time.perf_counter() - started
    worker.request_stop()
    thread.join()
    app.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return took


def trial_dramatiq(url: str, jobs: int) -> float:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    done = threading.Event()
    lock = threading.Lock()
    count = [0]

    @dramatiq.actor(max_retries=0)
    def noop(i: int) -> None:
        with lock:
            count[0] += 1
            if count[0] == jobs:
                done.set()

    for i in range(jobs):
        noop.send(i)
    worker = dramatiq.Worker(broker, worker_threads=THREADS)
    worker.start()
    started = time.perf_counter()
    done.wait()
    took = time.perf_counter() - started
    worker.stop()
    broker.close()
    return took


def trial_rq(url: str, jobs: int) -> float:
    import redis
    from rq import Queue, Worker

    sys.path.insert(0, str(HERE))
    conn = redis.Redis.from_url(url)
    queue = Queue("bench", connection=conn)
    with conn.pipeline() as pipe:
        for i in range(jobs):
            queue.enqueue("redis_bench.rq_noop", i, pipeline=pipe)
        pipe.execute()
    worker = Worker([queue], connection=conn)
    started = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    return time.perf_counter() - started


def rq_noop(i: int) -> None:
    return None


TRIALS = {"nuvom-redis": trial_nuvom, "dramatiq-redis": trial_dramatiq, "rq": trial_rq}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def run_trial(system: str, url: str, jobs: int) -> float:
    import redis

    redis.Redis.from_url(url).flushall()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(Path(__file__)), "--trial", system, "--url", url, "--jobs", str(jobs)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{system} failed:\n{out.stderr[-3000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial")
    parser.add_argument("--url")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    args = parser.parse_args()
    if args.trial:
        print(json.dumps({"system": args.trial, "seconds": TRIALS[args.trial](args.url, args.jobs)}))
        return
    systems = args.systems.split(",")
    results: dict[str, list[float]] = {s: [] for s in systems}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(tmp)
        try:
            for rep in range(args.reps):
                order = systems[rep % len(systems):] + systems[:rep % len(systems)]
                for system in order:
                    seconds = run_trial(system, url, args.jobs)
                    results[system].append(args.jobs / seconds)
                    print(f"rep {rep + 1} {system}: {args.jobs / seconds:,.0f} jobs/s", file=sys.stderr, flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    medians: dict[str, Any] = {s: statistics.median(v) for s, v in results.items()}
    base = medians.get("nuvom-redis")
    print(f"| drain {args.jobs:,} no-op, 1 process x {THREADS} threads | jobs/s (median of {args.reps}) | nuvom / it |")
    print("|---|---|---|")
    for system in systems:
        ratio = f"{base / medians[system]:.2f}x" if base and system != "nuvom-redis" else ""
        print(f"| {system} | {medians[system]:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
