"""Tasks for tests/test_worker_process_rules.py; imported by process-executor children,
so everything they report goes through files, never through shared memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nuvom import Retry, current_job, task


class RemoteError(Exception):
    pass


def _log(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


@task(name="prules.fail_always", retries=2, retry_delay_secs=0)
def fail_always() -> None:
    raise RemoteError(f"attempt {current_job().attempt} failed")


@task(name="prules.ask_retry", retries=1)
def ask_retry() -> int:
    if current_job().attempt == 1:
        raise Retry(delay=0)
    return current_job().attempt


@task(name="prules.retry_on", retries=3, retry_delay_secs=0, retry_on=(KeyError,))
def only_key_errors(kind: str) -> None:
    raise (KeyError("k") if kind == "key" else ValueError("v"))


def _before() -> None:
    _log(current_job().job.kwargs["log"], "before")


def _after(result: Any) -> None:
    _log(current_job().job.kwargs["log"], f"after:{result}")


def _on_error(exc: BaseException) -> None:
    _log(current_job().job.kwargs["log"], f"error:{type(exc).__name__}")


@task(name="prules.hooked", before_job=_before, after_job=_after, on_error=_on_error)
def hooked(fail: bool, log: str) -> str:
    if fail:
        raise ValueError("asked to fail")
    return "fine"


@task(name="prules.block")
def block(started: str) -> None:
    Path(started).touch()
    time.sleep(60)


@task(name="prules.remaining", timeout_secs=30)
def remaining() -> float:
    left = current_job().time_remaining()
    assert left is not None
    return left
