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
        t0 = time.perf_counter()
        for i in range(count):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            send(time.time())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if lat_file.exists():
                lags = [float(x) for x in lat_file.read_text().split()]
                if len(lags) >= count:
                    break
            time.sleep(0.05)
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the worker's cue to stop
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if len(lags) < count:
        raise SystemExit(f"{system}: only {len(lags)} of {count} jobs started within 60 s")
    lags.sort()
    return {"p50_ms": statistics.median(lags) * 1000, "p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000}
