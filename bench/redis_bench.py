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

``--measures latency`` (nuvom-redis and dramatiq-redis; RQ forks a child per
job and cannot keep up with 200 jobs/s): a worker process with 4 threads
idles 3 s, then this process enqueues one job at a time at ``--rate`` jobs/s
(200: 1,000 jobs; 5: 50 jobs); each job writes ``time.time()`` at its start
minus the time taken just before its enqueue was called.  p50 and p99 in ms.

Systems are interleaved within a repetition and their order rotated between
repetitions.  Prints one table per measure (medians, and ratios nuvom / peer).
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
    from latency import nuvom_bench_app

    from nuvom import Worker

    tmp = tempfile.mkdtemp(prefix="nuvom-redis-bench-")
    app = nuvom_bench_app("redis", tmp, NUVOM_REDIS__URL=url)
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


# -- latency ---------------------------------------------------------------------


def _nuvom_app(url: str) -> Any:
    from latency import nuvom_bench_app

    return nuvom_bench_app("redis", tempfile.mkdtemp(prefix="nuvom-redis-bench-"), NUVOM_REDIS__URL=url)


def serve_nuvom(url: str) -> None:
    app = _nuvom_app(url)
    from nuvom import Worker

    worker = Worker(app, concurrency=THREADS)
    threading.Thread(target=lambda: (sys.stdin.read(), worker.request_stop()), daemon=True).start()
    worker.run()
    app.close()


def sender_nuvom(url: str) -> Any:
    _nuvom_app(url)
    import bench_nuvom_tasks as tasks

    return lambda sent: tasks.stamp.delay(sent)


def _dramatiq_stamp(url: str) -> Any:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)

    @dramatiq.actor(max_retries=0)
    def stamp(sent: float) -> None:
        with open(os.environ["BENCH_LAT_FILE"], "a") as fh:
            fh.write(f"{time.time() - sent}\n")

    return broker, stamp


def serve_dramatiq(url: str) -> None:
    import dramatiq

    broker, _ = _dramatiq_stamp(url)
    worker = dramatiq.Worker(broker, worker_threads=THREADS)
    worker.start()
    sys.stdin.read()
    worker.stop()
    broker.close()


def sender_dramatiq(url: str) -> Any:
    _, stamp = _dramatiq_stamp(url)
    return lambda sent: stamp.send(sent)


SERVE = {"nuvom-redis": serve_nuvom, "dramatiq-redis": serve_dramatiq}
SENDER = {"nuvom-redis": sender_nuvom, "dramatiq-redis": sender_dramatiq}


def latency(system: str, url: str, rate: float) -> dict[str, float]:
    from latency import measure

    return measure(Path(__file__), system, url, SENDER[system](url), 1000 if rate >= 50 else 50, rate)


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


def run_trial(system: str, url: str, jobs: int, measure: str = "drain", rate: float = 200.0) -> dict[str, float]:
    import redis

    redis.Redis.from_url(url).flushall()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(Path(__file__)), "--trial", system, "--url", url, "--jobs", str(jobs),
                          "--measure", measure, "--rate", str(rate)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{system} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial")
    parser.add_argument("--url")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--measures", default="drain", help="drain, latency (comma-separated)")
    parser.add_argument("--measure", default="drain", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=200.0, help="latency: jobs/s (200: 1,000 jobs; 5: 50 jobs)")
    parser.add_argument("--serve")
    args = parser.parse_args()
    if args.serve:
        SERVE[args.serve](args.url)
        return
    if args.trial:
        if args.measure == "latency":
            print(json.dumps(latency(args.trial, args.url, args.rate)))
        else:
            print(json.dumps({"system": args.trial, "seconds": TRIALS[args.trial](args.url, args.jobs)}))
        return
    systems, measures = args.systems.split(","), args.measures.split(",")
    plan = [(m, s) for m in measures for s in systems if m == "drain" or s in SERVE]
    results: dict[tuple[str, str], list[dict[str, float]]] = {key: [] for key in plan}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(tmp)
        try:
            for rep in range(args.reps):
                for measure in measures:
                    ran = [s for m, s in plan if m == measure]
                    order = ran[rep % len(ran):] + ran[:rep % len(ran)] if ran else []
                    for system in order:
                        got = run_trial(system, url, args.jobs, measure, args.rate)
                        if measure == "drain":
                            got = {"jobs_per_s": args.jobs / got["seconds"]}
                        results[(measure, system)].append(got)
                        print(f"rep {rep + 1} {system} {measure}: {got}", file=sys.stderr, flush=True)
        finally:
            proc.terminate()
            proc.wait(30)

    def median(measure: str, system: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(measure, system)])

    if "drain" in measures:
        base = median("drain", "nuvom-redis", "jobs_per_s") if "nuvom-redis" in systems else None
        print(f"| drain {args.jobs:,} no-op, 1 process x {THREADS} threads | jobs/s (median of {args.reps}) "
              "| nuvom / it |")
        print("|---|---|---|")
        for system in systems:
            value = median("drain", system, "jobs_per_s")
            ratio = f"{base / value:.2f}x" if base and system != "nuvom-redis" else ""
            print(f"| {system} | {value:,.0f} | {ratio} |")
    if "latency" in measures:
        print()
        print(f"| enqueue-to-start at {args.rate:g} jobs/s (median of {args.reps}) | p50 ms | p99 ms |")
        print("|---|---|---|")
        for system in systems:
            if ("latency", system) in results:
                print(f"| {system} | {median('latency', system, 'p50_ms'):.2f} | {median('latency', system, 'p99_ms'):.2f} |")


if __name__ == "__main__":
    main()
