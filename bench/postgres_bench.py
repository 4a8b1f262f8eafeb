"""Nuvom's PostgreSQL backend against PgQueuer and Procrastinate, same server, same run.

    .venv/bin/pip install "pgqueuer==1.6.*" "procrastinate==3.10.*"     # into your venv, not requirements-dev
    .venv/bin/python bench/postgres_bench.py                  # median of 3, both measures
    .venv/bin/python bench/postgres_bench.py --reps 1 --jobs 2000 --measures drain
    .venv/bin/python bench/postgres_bench.py --url postgresql://user@host/db   # an existing server

Starts one throwaway PostgreSQL server (the plugin tests' launcher,
``tests/netservers/pg_server.py``: ``initdb`` on
127.0.0.1, a free port, ``fsync=off``) unless ``--url`` names one.  Each
system gets its own database on that server.  Every trial is a fresh process
(``--trial SYSTEM MEASURE``); systems are interleaved within a repetition and
their order rotated between repetitions.

Measures:

- ``drain``: enqueue ``--jobs`` no-op jobs (in batches, untimed), then time
  one worker process from start to the last job done.  Concurrency 4:
  ``nuvom``: ``Worker(concurrency=4)`` (4 threads, every other setting at its
  default); ``pgqueuer``: ``QueueManager.run(mode=drain)`` with an ``async``
  entrypoint and its defaults (batch_size 10, no concurrency cap: async
  tasks on one event loop); ``procrastinate``: ``run_worker_async(concurrency=4,
  wait=False)`` with an ``async`` task, other options at their defaults.
- ``latency``: a worker process idles, then this process enqueues one job at
  a time at 200 jobs/s (1,000 jobs); each job records ``time.time()`` at its
  start minus the time it was sent.  p50 and p99 in ms.

Prints one table: medians, and the ratio nuvom / peer for the drain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SYSTEMS = ["nuvom", "pgqueuer", "procrastinate"]
MEASURES = ["drain", "latency"]
THREADS = 4
RATE, LATENCY_JOBS = 200.0, 1000
HERE = Path(__file__).resolve().parent
PG_TESTS = Path(__file__).resolve().parent.parent / "tests" / "netservers"


def database_url(base: str, system: str) -> str:
    """``base`` (a URL or ``key=value`` string) pointed at the system's own database, as a URL (asyncpg wants one)."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(base)
    auth = quote(params.get("user") or "") + (":" + quote(params["password"]) if params.get("password") else "")
    return f"postgresql://{auth}{'@' if auth else ''}{params.get('host') or 'localhost'}:{params.get('port') or 5432}/bench_{system}"


# -- nuvom -----------------------------------------------------------------------


def _nuvom_app(url: str, tmp: str) -> Any:
    from latency import nuvom_bench_app

    return nuvom_bench_app("postgres", tmp, NUVOM_POSTGRES__URL=url)


def nuvom_drain(url: str, jobs: int) -> float:
    tmp = tempfile.mkdtemp(prefix="nuvom-pg-bench-")
    app = _nuvom_app(url, tmp)
    import bench_nuvom_tasks as tasks

    from nuvom import Worker

    app.queue.open()
    app.queue.db.run(lambda conn: conn.execute("TRUNCATE nuvom.jobs, nuvom.jobs_done, nuvom.workers"))
    for start in range(0, jobs, 1000):
        tasks.noop.map(range(start, min(jobs, start + 1000)))
    tasks.expect(jobs)
    worker = Worker(app, concurrency=THREADS)
    started = time.perf_counter()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    tasks.all_done.wait()
    took = time.perf_counter() - started
    worker.request_stop()
    thread.join()
    app.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return took


def nuvom_serve(url: str) -> None:
    tmp = tempfile.mkdtemp(prefix="nuvom-pg-bench-")
    app = _nuvom_app(url, tmp)
    from nuvom import Worker

    worker = Worker(app, concurrency=THREADS)
    threading.Thread(target=lambda: (sys.stdin.read(), worker.request_stop()), daemon=True).start()
    worker.run()
    app.close()


def nuvom_sender(url: str) -> Any:
    tmp = tempfile.mkdtemp(prefix="nuvom-pg-bench-")
    app = _nuvom_app(url, tmp)
    app.queue.open()
    app.queue.db.run(lambda conn: conn.execute("TRUNCATE nuvom.jobs, nuvom.jobs_done, nuvom.workers"))
    import bench_nuvom_tasks as tasks

    return lambda sent: tasks.stamp.delay(sent)


# -- PgQueuer --------------------------------------------------------------------


async def _pgq_connect(url: str) -> Any:
    """asyncpg, PgQueuer's recommended driver."""
    import asyncpg
    from pgqueuer.db import AsyncpgDriver

    conn = await asyncpg.connect(url)
    return conn, AsyncpgDriver(conn)


async def _pgq_fresh(url: str) -> None:
    from pgqueuer.queries import Queries

    conn, driver = await _pgq_connect(url)
    queries = Queries(driver)
    try:
        await queries.uninstall()
    except Exception:
        pass
    await queries.install()
    await conn.close()


def pgqueuer_drain(url: str, jobs: int) -> float:
    async def main() -> float:
        from pgqueuer.qm import QueueManager
        from pgqueuer.queries import Queries
        from pgqueuer.types import QueueExecutionMode

        await _pgq_fresh(url)
        conn, driver = await _pgq_connect(url)
        queries = Queries(driver)
        for start in range(0, jobs, 1000):
            n = min(jobs, start + 1000) - start
            await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
        done = [0]
        qm = QueueManager(Queries(driver))

        @qm.entrypoint("noop")
        async def noop(job: Any) -> None:
            done[0] += 1

        started = time.perf_counter()
        await qm.run(mode=QueueExecutionMode.drain)
        took = time.perf_counter() - started
        await conn.close()
        if done[0] != jobs:
            raise SystemExit(f"pgqueuer ran {done[0]} of {jobs} jobs")
        return took

    return asyncio.run(main())


def pgqueuer_serve(url: str) -> None:
    async def main() -> None:
        from pgqueuer.qm import QueueManager
        from pgqueuer.queries import Queries

        conn, driver = await _pgq_connect(url)
        qm = QueueManager(Queries(driver))
        lat = open(os.environ["BENCH_LAT_FILE"], "a")  # noqa: SIM115

        @qm.entrypoint("stamp")
        async def stamp(job: Any) -> None:
            lat.write(f"{time.time() - float(job.payload.decode())}\n")
            lat.flush()

        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, lambda: (sys.stdin.read(), loop.call_soon_threadsafe(qm.shutdown.set)))
        await qm.run()
        await conn.close()

    asyncio.run(main())


def pgqueuer_sender(url: str) -> Any:
    asyncio.run(_pgq_fresh(url))
    import psycopg
    from pgqueuer.db import SyncPsycopgDriver
    from pgqueuer.queries import SyncQueries

    conn = psycopg.connect(url, autocommit=True)
    queries = SyncQueries(SyncPsycopgDriver(conn))
    return lambda sent: queries.enqueue("stamp", str(sent).encode(), 0)


# -- Procrastinate ---------------------------------------------------------------


def _procrastinate_app(url: str) -> Any:
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))


def _procrastinate_fresh(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    app = _procrastinate_app(url)
    with app.open():
        app.schema_manager.apply_schema()


def procrastinate_drain(url: str, jobs: int) -> float:
    _procrastinate_fresh(url)
    app = _procrastinate_app(url)
    done = [0]

    @app.task(name="noop")
    async def noop(i: int) -> None:
        done[0] += 1

    async def main() -> float:
        async with app.open_async():
            for start in range(0, jobs, 1000):
                await noop.batch_defer_async(*({"i": i} for i in range(start, min(jobs, start + 1000))))
            started = time.perf_counter()
            await app.run_worker_async(concurrency=THREADS, wait=False)
            took = time.perf_counter() - started
        if done[0] != jobs:
            raise SystemExit(f"procrastinate ran {done[0]} of {jobs} jobs")
        return took

    return asyncio.run(main())


def procrastinate_serve(url: str) -> None:
    app = _procrastinate_app(url)
    lat = open(os.environ["BENCH_LAT_FILE"], "a")  # noqa: SIM115

    @app.task(name="stamp")
    async def stamp(sent: float) -> None:
        lat.write(f"{time.time() - sent}\n")
        lat.flush()

    async def main() -> None:
        async with app.open_async():
            task = asyncio.ensure_future(app.run_worker_async(concurrency=THREADS))
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    asyncio.run(main())


def procrastinate_sender(url: str) -> Any:
    _procrastinate_fresh(url)
    app = _procrastinate_app(url)

    @app.task(name="stamp")
    async def stamp(sent: float) -> None:
        return None

    app.open()
    return lambda sent: stamp.defer(sent=sent)


DRAIN = {"nuvom": nuvom_drain, "pgqueuer": pgqueuer_drain, "procrastinate": procrastinate_drain}
SERVE = {"nuvom": nuvom_serve, "pgqueuer": pgqueuer_serve, "procrastinate": procrastinate_serve}
SENDER = {"nuvom": nuvom_sender, "pgqueuer": pgqueuer_sender, "procrastinate": procrastinate_sender}


def latency(system: str, url: str) -> dict[str, float]:
    from latency import measure

    send = SENDER[system](url)  # also empties the system's tables
    return measure(Path(__file__), system, url, send, LATENCY_JOBS, RATE)


def run_trial(system: str, measure: str, url: str, jobs: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(Path(__file__)), "--trial", system, measure, "--url", url,
                          "--jobs", str(jobs)], capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{system} {measure} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial", nargs=2, metavar=("SYSTEM", "MEASURE"))
    parser.add_argument("--serve")
    parser.add_argument("--url", default="")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--measures", default=",".join(MEASURES))
    args = parser.parse_args()
    if args.serve:
        SERVE[args.serve](args.url)
        return
    if args.trial:
        system, measure = args.trial
        result = {"seconds": DRAIN[system](args.url, args.jobs)} if measure == "drain" else latency(system, args.url)
        print(json.dumps(result))
        return
    systems, measures = args.systems.split(","), args.measures.split(",")
    server = None
    base = args.url
    if not base:
        sys.path.insert(0, str(PG_TESTS))
        from pg_server import PgServer

        server = PgServer()
        server.start()
        base = server.url
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        for system in systems:
            conn.execute(f"DROP DATABASE IF EXISTS bench_{system}")
            conn.execute(f"CREATE DATABASE bench_{system}")
    results: dict[tuple[str, str], list[dict[str, float]]] = {(s, m): [] for s in systems for m in measures}
    try:
        for rep in range(args.reps):
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]
            for measure in measures:
                for system in order:
                    got = run_trial(system, measure, database_url(base, system), args.jobs)
                    if measure == "drain":
                        got = {"jobs_per_s": args.jobs / got["seconds"]}
                    results[(system, measure)].append(got)
                    print(f"rep {rep + 1} {system} {measure}: {got}", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.cleanup()

    def median(system: str, measure: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(system, measure)])

    if "drain" in measures:
        print(f"| drain {args.jobs:,} no-op jobs, 1 process, concurrency {THREADS} | jobs/s (median of {args.reps}) "
              "| nuvom / it |")
        print("|---|---|---|")
        ours = median("nuvom", "drain", "jobs_per_s") if "nuvom" in systems else None
        for system in systems:
            value = median(system, "drain", "jobs_per_s")
            ratio = f"{ours / value:.2f}x" if ours and system != "nuvom" else ""
            print(f"| {system} | {value:,.0f} | {ratio} |")
    if "latency" in measures:
        print()
        print(f"| enqueue-to-start at {RATE:.0f} jobs/s ({LATENCY_JOBS:,} jobs) | p50 ms | p99 ms |")
        print("|---|---|---|")
        for system in systems:
            print(f"| {system} | {median(system, 'latency', 'p50_ms'):.1f} | {median(system, 'latency', 'p99_ms'):.1f} |")


if __name__ == "__main__":
    main()
