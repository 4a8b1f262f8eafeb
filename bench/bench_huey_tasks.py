"""Huey tasks for bench/run.py.  $BENCH_HUEY_KIND (sqlite, file, memory) and
$BENCH_HUEY_PATH pick the storage; every Huey option is left at its default."""

from __future__ import annotations

import os
import threading
import time

from huey import FileHuey, MemoryHuey, SqliteHuey, signals

_kind = os.environ.get("BENCH_HUEY_KIND", "memory")
_path = os.environ.get("BENCH_HUEY_PATH", "")
if _kind == "sqlite":
    huey = SqliteHuey("bench", filename=os.path.join(_path, "huey.db"))
elif _kind == "file":
    huey = FileHuey("bench", path=os.path.join(_path, "huey-files"))
else:
    huey = MemoryHuey("bench")

finished = 0
target = 0
all_done = threading.Event()
_lock = threading.Lock()


@huey.task()
def noop(i: int = 0) -> None:
    return None


@huey.task()
def nap(i: int = 0) -> None:
    time.sleep(0.01)


@huey.task()
def stamp(sent: float) -> None:
    lag = time.time() - sent
    with open(os.environ["BENCH_LAT_FILE"], "a") as fh:
        fh.write(f"{lag}\n")


@huey.signal(signals.SIGNAL_COMPLETE)
def _count(signal: str, task: object, *args: object) -> None:
    global finished
    with _lock:
        finished += 1
        if finished == target:
            all_done.set()


def expect(count: int) -> None:
    global finished, target
    finished, target = 0, count
    all_done.clear()
