"""Tasks the process executor's tests run in child processes.

The tests put this directory on ``sys.path`` and import the module by name;
the executor passes ``sys.path`` to its children so they import it too.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from nuvom_executor_process.memory import peak_rss_mb

from nuvom_kernel.context import current_job
from nuvom_kernel.errors import Retry
from nuvom_kernel.task import task


class ProcCustomError(Exception):
    pass


@task(name="proc.pid")
def pid() -> int:
    return os.getpid()


@task(name="proc.sleep")
def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@task(name="proc.recv")
def recv(port: int) -> bytes:
    """Connect to a server that never answers and block in recv()."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        return conn.recv(1)


@task(name="proc.exit")
def exit_now(code: int) -> None:
    os._exit(code)


@task(name="proc.touch_then_sleep")
def touch_then_sleep(path: str, seconds: float) -> str:
    Path(path).touch()
    time.sleep(seconds)
    return "woke"


@task(name="proc.async_info")
async def async_info(value: int) -> list[int]:
    await asyncio.sleep(0)
    return [os.getpid(), id(asyncio.get_running_loop()), value]


@task(name="proc.time_left")
def time_left() -> float | None:
    return current_job().time_remaining()


@task(name="proc.retry")
def ask_retry(delay: float) -> None:
    raise Retry(delay=delay, reason="not yet")


@task(name="proc.retry_on", retry_on=(KeyError,))
def retry_on(kind: str) -> None:
    raise KeyError("k") if kind == "key" else ValueError("v")


@task(name="proc.custom_error")
def custom_error(message: str) -> None:
    raise ProcCustomError(message)


@task(name="proc.progress")
def progress(n: int) -> int:
    for i in range(n):
        current_job().set_progress({"done": i + 1, "total": n})
    return n


@task(name="proc.unpicklable")
def unpicklable() -> object:
    return lambda: None


@task(name="proc.rss")
def rss() -> float | None:
    return peak_rss_mb()


@task(name="proc.alloc")
def alloc(mb: int) -> int:
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page so it is resident
        block[i] = 1
    return len(block) // (1024 * 1024)


@task(name="proc.system_exit")
def system_exit() -> None:
    raise SystemExit(4)


# -- tasks with options, for the end-to-end tests with a real worker ---------------------

@task(name="proc.e2e_add")
def e2e_add(a: int, b: int) -> list[int]:
    return [a + b, os.getpid()]


@task(name="proc.e2e_block_fail", timeout_secs=0.5, timeout_policy="fail", retries=2, retry_delay_secs=0)
def e2e_block_fail(port: int | None) -> str:
    if port is None:
        time.sleep(60)
        return "late"
    return recv(port).decode()


@task(name="proc.e2e_block_then_ok", timeout_secs=0.5, timeout_policy="retry", retries=1, retry_delay_secs=0)
def e2e_block_then_ok() -> str:
    if current_job().attempt == 1:
        time.sleep(60)
    return f"attempt {current_job().attempt}"


@task(name="proc.e2e_crash", retries=2, retry_delay_secs=0)
def e2e_crash() -> None:
    os._exit(9)


@task(name="proc.e2e_in_process", executor="process")
def e2e_in_process() -> int:
    return os.getpid()


@task(name="proc.e2e_async", executor="process")
async def e2e_async(value: int) -> list[int]:
    await asyncio.sleep(0)
    return [value, os.getpid()]
