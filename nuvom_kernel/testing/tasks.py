"""Tasks the executor contract runs; importable by spawned child processes."""

from __future__ import annotations

import os
import threading
import time

from nuvom_kernel.task import task

_gates: dict[str, threading.Event] = {}


@task(name="nuvom_contract.echo")
def echo(value: object) -> object:
    return value


@task(name="nuvom_contract.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@task(name="nuvom_contract.sleep")
def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@task(name="nuvom_contract.pid")
def pid() -> int:
    return os.getpid()


@task(name="nuvom_contract.wait_file")
def wait_file(path: str, timeout: float = 30.0) -> str:
    """Block until ``path`` exists (lets a test hold several jobs running at once)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    return "released"


@task(name="nuvom_contract.aecho")
async def aecho(value: object) -> object:
    import asyncio

    await asyncio.sleep(0)
    return value
