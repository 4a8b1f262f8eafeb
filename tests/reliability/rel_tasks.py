"""Tasks the reliability workers run (loaded with ``runworker --tasks <this file>``).

Every task first appends ``job_id attempt pid token started_at`` to this
process's own log file (``exec-<pid>.log`` in ``RELIABILITY_LOG_DIR``),
flushed per line, opened in append mode: a kill loses at most a partial last
line, which the checker ignores.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO

from nuvom import current_job, task

_lock = threading.Lock()
_log: IO[str] | None = None


def log_execution(end: bool = False) -> None:
    """A start line (``job attempt pid token time``), or with ``end`` the same
    fields and ``end``: the task's code returned (its outcome may still be
    waiting in the worker to be written back)."""
    global _log
    ctx = current_job()
    line = f"{ctx.id} {ctx.attempt} {os.getpid()} {ctx.job.token} {time.time():.6f}{' end' if end else ''}\n"
    with _lock:
        if _log is None:
            path = os.path.join(os.environ["RELIABILITY_LOG_DIR"], f"exec-{os.getpid()}.log")
            _log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        _log.write(line)
        _log.flush()


def big_result(n: int, size: int) -> str:
    """The deterministic large result of ``rel.big`` (the checker recomputes it)."""
    unit = f"{n}:"
    return (unit * (size // len(unit) + 1))[:size]


@task(name="rel.work")
def work(n: int, ms: float = 0.0) -> int:
    log_execution()
    if ms:
        time.sleep(ms / 1000.0)
    log_execution(end=True)
    return n


@task(name="rel.cooperative")
def cooperative(secs: float) -> str:
    """Runs ``secs`` unless asked to stop; logs ``stopped`` or ``end``."""
    log_execution()
    ctx = current_job()
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if ctx.is_cancelled():
            with open(os.path.join(os.environ["RELIABILITY_LOG_DIR"], f"stopped-{ctx.id}"), "w") as fh:
                fh.write(f"{time.time():.6f}\n")
            return "stopped"
        time.sleep(0.02)
    log_execution(end=True)
    return "end"


@task(name="rel.big")
def big(n: int, size: int) -> str:
    log_execution()
    return big_result(n, size)


@task(name="rel.stall")
def stall(first_ms: float) -> int:
    """Sleeps ``first_ms`` on its first delivery only; later ones return at once.
    Returns the delivery number: attempts plus leases lost while running."""
    log_execution()
    job = current_job().job
    delivery = job.attempts + job.lease_expiries
    if delivery == 1:
        time.sleep(first_ms / 1000.0)
    log_execution(end=True)
    return delivery


@task(name="rel.exit_process")
def exit_process() -> None:
    """A poison task: it kills the worker process running it (thread executor)."""
    log_execution()
    os._exit(3)
