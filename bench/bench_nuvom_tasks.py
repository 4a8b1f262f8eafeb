"""Nuvom tasks for bench/run.py, and an observer plugin that counts finished jobs."""

from __future__ import annotations

import os
import threading
import time

from nuvom import hookimpl, task

finished = 0
target = 0
all_done = threading.Event()
_lock = threading.Lock()


@task
def noop(i: int = 0) -> None:
    return None


@task
def nap(i: int = 0) -> None:
    time.sleep(0.01)


@task(store_result=False)
def stamp(sent: float) -> None:
    """Append the enqueue-to-start latency (seconds) to $BENCH_LAT_FILE."""
    lag = time.time() - sent
    with open(os.environ["BENCH_LAT_FILE"], "a") as fh:
        fh.write(f"{lag}\n")


@hookimpl
def nuvom_job_finished(job: object, record: object) -> None:
    global finished
    with _lock:
        finished += 1
        if finished == target:
            all_done.set()


def expect(count: int) -> None:
    global finished, target
    finished, target = 0, count
    all_done.clear()
