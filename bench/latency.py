"""The enqueue-to-start latency driver shared by redis_bench.py and
postgres_bench.py: a worker process (``script --serve SYSTEM --url URL``)
idles, this process sends ``count`` jobs at ``rate`` a second, each carrying
the time just before its enqueue, and the worker writes ``now - sent`` to
``$BENCH_LAT_FILE`` when a job starts."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def measure(script: Path, system: str, url: str, send: Callable[[float], None], count: int,
            rate: float) -> dict[str, float]:
    """p50 and p99 in ms of ``count`` jobs sent by ``send(sent_at)`` at ``rate`` jobs/s."""
    tmp = tempfile.mkdtemp(prefix="bench-lat-")
    lat_file = Path(tmp) / "latency.txt"
    os.environ["BENCH_LAT_FILE"] = str(lat_file)  # the sender's side reads it too (in-process peers)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    server = subprocess.Popen([sys.executable, str(script), "--serve", system, "--url", url],
                              stdin=subprocess.PIPE, env=env)
    lags: list[float] = []
    try:
        time.sleep(3.0)  # the worker starts and settles into its idle state
        lags = send_at_rate(send, count, rate, lat_file)
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the worker's cue to stop
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return percentiles(system, lags, count)


def send_at_rate(send: Callable[[float], None], count: int, rate: float, lat_file: Path) -> list[float]:
    """Call ``send(time.time())`` ``count`` times at ``rate`` a second, then wait up
    to 60 s for the worker to have written ``count`` latencies to ``lat_file``."""
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(time.time())
    deadline = time.monotonic() + 60
    lags: list[float] = []
    while time.monotonic() < deadline:
        if lat_file.exists():
            lags = [float(x) for x in lat_file.read_text().split()]
            if len(lags) >= count:
                break
        time.sleep(0.05)
    return lags


def percentiles(system: str, lags: list[float], count: int) -> dict[str, float]:
    """p50, p99 and max in ms; exits naming ``system`` if jobs went missing."""
    if len(lags) < count:
        raise SystemExit(f"{system}: only {len(lags)} of {count} jobs started within 60 s")
    lags = sorted(lags)
    return {"p50_ms": statistics.median(lags) * 1000, "p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000,
            "max_ms": lags[-1] * 1000}


def nuvom_bench_app(backend: str, tmp: str, **env: str) -> Any:
    """A Nuvom app on ``backend`` rooted at ``tmp`` with the bench's tasks loaded."""
    os.environ.update(NUVOM_QUEUE_BACKEND=backend, NUVOM_RESULT_BACKEND=backend, NUVOM_PROJECT_ROOT=tmp,
                      NUVOM_LOG_LEVEL="WARNING", **env)
    sys.path.insert(0, str(HERE))
    from nuvom import Nuvom, set_default_app

    app = Nuvom(root=tmp)
    set_default_app(app)
    app.plugins.load()
    app.plugins.load_spec("bench_nuvom_tasks")
    return app
