"""The reliability harness: real worker processes, kills, stop files, seeds.

A :class:`Project` is a temporary project directory with one backend, the
worker processes started on it (``python -m nuvom_cli runworker``), the kills
and graceful stops done to them, and an app in this process to enqueue and
read jobs.  The Jepsen-style checker lives in :mod:`reliability.checker`.

Backends: the embedded ones (``BACKENDS``) need nothing; the networked
ones (``NET_BACKENDS``) run against this session's real servers
(``tests/netservers``), each project on a fresh Redis namespace or
PostgreSQL schema whose settings reach every process through
``Project.plugin_env`` (see ``tests/reliability/conftest.py``).

Sizes: reduced by default (so ``.ci/run`` stays within its budget); the full
sizes of ``RELIABILITY.md`` with ``NUVOM_FULL_RELIABILITY=1``.  Every test
draws its randomness from one seed, printed at the start;
``NUVOM_RELIABILITY_SEED=<n>`` replays it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.worker import stop_file

HERE = Path(__file__).resolve().parent
TASKS_FILE = HERE / "rel_tasks.py"
SKEW_DIR = HERE.parent / "netservers" / "skew"
FULL = os.environ.get("NUVOM_FULL_RELIABILITY", "") == "1"
BACKENDS = ["sqlite", "file"]
#: Backends on a server: a test that names them gets one through the ``make_project`` fixture.
NET_BACKENDS = ["redis", "postgres"]
ALL_BACKENDS = BACKENDS + NET_BACKENDS
LIVE = (JobState.QUEUED, JobState.SCHEDULED, JobState.CLAIMED, JobState.RUNNING)
#: Generous bound on anything that should take well under a second.
SLACK_SECS = 0.5


def size(reduced: int, full: int, *, backend: str = "", net: int | None = None) -> int:
    """``full`` with NUVOM_FULL_RELIABILITY=1, else ``reduced`` (``net`` instead
    when given and ``backend`` is a networked one: every round trip there
    crosses a socket to a server sharing the CI machine's two cores)."""
    if FULL:
        return full
    return net if net is not None and backend in NET_BACKENDS else reduced


def skewed_clock_env(secs: float) -> dict[str, str]:
    """Environment that makes a worker process a host whose wall clock
    (``time.time()``) is ``secs`` off (``tests/netservers/skew``)."""
    path = os.pathsep.join(p for p in (str(SKEW_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "NUVOM_TEST_CLOCK_SKEW": repr(float(secs))}


def make_rng(name: str) -> tuple[random.Random, int]:
    """A seeded RNG for one test; the seed is printed so a failure reproduces."""
    env = os.environ.get("NUVOM_RELIABILITY_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(1, 2**31)
    print(f"[reliability] {name}: NUVOM_RELIABILITY_SEED={seed} (full size: {FULL})", flush=True)
    return random.Random(seed), seed


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until true; ``AssertionError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Kill:
    pid: int
    worker_id: str
    called_at: float  # time.time() just before Popen.kill()
    dead_at: float  # time.time() once the process was reaped


class WorkerProc:
    """One ``runworker`` process."""

    def __init__(self, project: Project, worker_id: str, concurrency: int, extra: list[str],
                 env: dict[str, str] | None = None) -> None:
        self.project = project
        self.id = worker_id
        self.stderr_path = project.logs / f"worker-{worker_id}.stderr"
        cmd = [sys.executable, "-m", "nuvom_cli", "runworker", "--tasks", str(TASKS_FILE),
               "--concurrency", str(concurrency), "--id", worker_id, "--no-manifest", *extra]
        with open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(cmd, cwd=project.root, env=project.env(**(env or {})), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err)
        self.pid = self.popen.pid
        self.started_at = time.time()
        self.stop_requested_at: float | None = None
        self.exited_at: float | None = None

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def is_ready(self) -> bool:
        """The CLI prints its banner just before the worker loop starts."""
        return f"worker {self.id}" in self.stderr()

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"worker {self.id} exited with {self.popen.returncode}:\n{self.stderr()[-3000:]}")
            return self.is_ready()

        wait_until(ready, timeout, f"worker {self.id} to start")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> Kill:
        called = time.time()
        self.popen.kill()
        self.popen.wait(30)
        self.exited_at = time.time()
        return Kill(self.pid, self.id, called, self.exited_at)

    def request_stop(self) -> float:
        """The portable graceful stop: create ``.nuvom/workers/stop-<id>``."""
        path = stop_file(self.project.root, self.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stop_requested_at = time.time()
        path.touch()
        return self.stop_requested_at

    def wait(self, timeout: float = 60.0) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(30)
            raise AssertionError(f"worker {self.id} did not exit within {timeout} s:\n{self.stderr()[-3000:]}") from None
        self.exited_at = self.exited_at or time.time()
        return code


@dataclass
class Project:
    """A temp project on one backend, with worker processes and a local app."""

    root: Path
    backend: str
    #: 5 s: a heartbeat starved for longer than the lease (a loaded CI machine)
    #: would let another worker run a job whose worker was never killed, which R1
    #: counts as an unexplained duplicate; 2 s did that once under load 13.
    lease_secs: float = 5.0
    sweep_interval_secs: float = 0.5
    settings: dict[str, str] = field(default_factory=dict)
    #: A process killed while changing a job leaves its per-job lock behind; the
    #: file backend breaks it after ``lock_stale_secs`` (30 s by default).  The
    #: tests use 5 s so a run with many kills does not spend minutes waiting.
    file_lock_stale_secs: float = 5.0
    #: ``NUVOM_<SECTION>__<KEY>`` plugin settings (a server's url, a namespace or
    #: schema of this project's own) for the workers and this process's app
    plugin_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.backend == "file":
            (self.root / ".nuvom_plugins.toml").write_text(
                "[plugins.settings.nuvom-backend-file]\n"
                f"lock_stale_secs = {self.file_lock_stale_secs}\n", encoding="utf-8")
        self.logs = self.root / "reliability-logs"
        self.exec_dir = self.root / "exec"
        self.logs.mkdir(exist_ok=True)
        self.exec_dir.mkdir(exist_ok=True)
        self.workers: list[WorkerProc] = []
        self.kills: list[Kill] = []
        self._app: Nuvom | None = None
        self._count = 0

    # -- configuration -------------------------------------------------------------

    def nuvom_settings(self) -> dict[str, str]:
        values = {
            "queue_backend": self.backend,
            "result_backend": self.backend,
            "lease_secs": str(self.lease_secs),
            "sweep_interval_secs": str(self.sweep_interval_secs),
            "poll_interval_secs": "0.2",
            "log_level": "WARNING",
        }
        values.update(self.settings)
        return values

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
        env.update({f"NUVOM_{k.upper()}": v for k, v in self.nuvom_settings().items()})
        env.update(self.plugin_env)
        env["NUVOM_PROJECT_ROOT"] = str(self.root)
        env["PYTHONUNBUFFERED"] = "1"
        env["RELIABILITY_LOG_DIR"] = str(self.exec_dir)
        env.update(extra)
        return env

    @property
    def app(self) -> Nuvom:
        if self._app is None:
            self._app = Nuvom(root=self.root, environ=dict(self.plugin_env), **self.nuvom_settings())  # type: ignore[arg-type]
        return self._app

    # -- workers -------------------------------------------------------------------

    def start_worker(self, concurrency: int = 4, extra: Iterable[str] = (),
                     env: dict[str, str] | None = None) -> WorkerProc:
        """A ``runworker`` process; ``env``: extra environment for it alone."""
        self._count += 1
        worker = WorkerProc(self, f"rel-w{self._count}", concurrency, list(extra), env)
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[WorkerProc]:
        return [w for w in self.workers if w.alive()]

    def kill(self, worker: WorkerProc) -> Kill:
        record = worker.kill()
        self.kills.append(record)
        return record

    def stop_all(self, timeout: float = 60.0) -> None:
        """Graceful stop of every live worker; each must exit 0."""
        live = self.live_workers()
        for w in live:
            w.request_stop()
        for w in live:
            code = w.wait(timeout)
            assert code == 0, f"worker {w.id} exited {code} on a graceful stop:\n{w.stderr()[-3000:]}"

    def close(self) -> None:
        for w in self.workers:
            if w.alive():
                w.popen.kill()
                w.popen.wait(30)
        if self._app is not None:
            self._app.close()
            self._app = None

    # -- jobs ----------------------------------------------------------------------

    def enqueue_work(self, count: int, rng: random.Random, max_ms: float = 0.0, retries: int = 10,
                     start: int = 0, min_ms: float = 0.0) -> list[str]:
        """Enqueue ``count`` ``rel.work`` jobs (one batch) running ``min_ms`` to
        ``max_ms`` each; the ids whose enqueue returned."""
        jobs = [Job(task="rel.work", args=[start + i, round(rng.uniform(min_ms, max_ms), 2) if max_ms else 0],
                    max_retries=retries, retry_delay_secs=0.0, timeout_secs=None)
                for i in range(count)]
        return [j.id for j in self.app.enqueue_many(jobs)]

    def live_count(self) -> int:
        counts = self.app.queue.counts()
        return sum(n for per in counts.values() for s, n in per.items() if JobState(s) in LIVE)

    def wait_drained(self, timeout: float, check_workers: bool = True) -> None:
        """Until no job is queued, scheduled or running (workers must stay alive)."""
        def drained() -> bool:
            if check_workers:
                for w in self.workers:
                    if w.exited_at is None and not w.alive():
                        raise AssertionError(f"worker {w.id} died on its own (exit {w.popen.returncode}):\n"
                                             f"{w.stderr()[-3000:]}")
            return self.live_count() == 0

        wait_until(drained, timeout, "every job to reach a terminal state", interval=0.2)

    def final_jobs(self, ids: Iterable[str]) -> dict[str, Job | None]:
        queue = self.app.queue
        return {jid: queue.get(jid) for jid in ids}

    def quarantined(self) -> list[str]:
        """Reasons of everything the backend quarantined."""
        if self.backend in NET_BACKENDS:  # a job that cannot be decoded is made dead, saying so
            return [j.reason or "" for j in self.app.list_jobs(states=[JobState.DEAD], limit=10**6)
                    if "corrupt" in (j.reason or "")]
        if self.backend == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.root / ".nuvom" / "result.db")
            try:
                return [str(r[0]) for r in conn.execute("SELECT reason FROM quarantine")]
            finally:
                conn.close()
        qdir = self.root / ".nuvom" / "jobs" / "quarantine"
        if not qdir.is_dir():
            return []
        return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(qdir.glob("*.reason"))]

    def worker_problems(self) -> list[str]:
        """Tracebacks or errors any worker wrote to stderr."""
        out = []
        for w in self.workers:
            text = w.stderr()
            if "Traceback" in text or "ERROR" in text:
                out.append(f"--- {w.id} ---\n{text[-3000:]}")
        return out


def describe(figures: dict[str, Any]) -> str:
    """One line of figures, printed by each test (collected into docs/reliability.md)."""
    line = "[reliability] " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    return line
