"""What runs inside a spawned child: receive a job, run it, send back how it ended.

Messages are pickled tuples on two one-way pipes (parent -> child: jobs;
child -> parent: everything else).  They never leave this pair of processes,
and nothing read from a queue backend is unpickled here: the job arrives as
the worker already decoded it.

Child -> parent messages:

- ``("ready", pid)`` once the child has started and preloaded known modules;
- ``("started", job_id, wall_time)`` when the task is about to run (the
  parent's timeout clock starts here);
- ``("progress", job_id, value)`` for each ``current_job().set_progress()``;
- ``("result", job_id, payload)`` with ``ok``, ``value`` (pickled bytes),
  ``error`` (ErrorInfo fields), ``retry`` (``(delay, reason)`` for
  ``nuvom.Retry``), ``retry_on_match`` and ``rss_mb``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from nuvom_executor_process.memory import peak_rss_mb
from nuvom_kernel.context import JobContext
from nuvom_kernel.errors import Retry
from nuvom_kernel.execution import error_info, run_async, run_sync
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.models import Job, now
from nuvom_kernel.task import Task, registry
from nuvom_support.loader import ensure_on_path, import_module_or_file

log = logging.getLogger("nuvom.executor.process.child")

#: module names a spawned child cannot import by name (the parent's script)
MAIN_MODULES = ("__main__", "__mp_main__")


@dataclass
class ChildJobContext(JobContext):
    """``current_job()`` in a child: progress goes to the parent, which records it."""

    sink: Callable[[Any], None] | None = None

    def set_progress(self, progress: Any) -> bool:
        self.job.progress = progress
        if self.sink is not None:
            self.sink(progress)
        return True


class _Channel:
    """The child's end of the result pipe; sends from any thread of the task."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            self.conn.send_bytes(data)


def merge_sys_path(entries: Sequence[str]) -> None:
    """Put the parent's ``sys.path`` first, keeping entries only this child has."""
    wanted = list(dict.fromkeys(entries))
    sys.path[:] = wanted + [p for p in sys.path if p not in wanted]


def _watch_parent() -> None:
    """Exit when the parent process dies, even in the middle of a task."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="nuvom-parent-watch", daemon=True).start()


def child_main(task_r: Connection, res_w: Connection, root: str, modules: list[str],
               sys_path: list[str], log_level: int) -> None:
    """Entry point of a child process (the target of ``Process``)."""
    try:  # Ctrl+C reaches the whole console group; the parent decides what stops
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        pass
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s [child %(process)d] %(name)s: %(message)s")
    merge_sys_path(sys_path)
    project_root = Path(root)
    ensure_on_path(project_root)
    _watch_parent()
    loop = asyncio.new_event_loop()  # one loop per child, reused by every async job
    asyncio.set_event_loop(loop)
    channel = _Channel(res_w)
    for spec in modules:
        _import(spec, project_root)
    channel.send(("ready", os.getpid()))
    try:
        while True:
            try:
                message = task_r.recv()
            except (EOFError, OSError):
                break  # the parent closed the pipe or is gone
            if message[0] == "stop":
                break
            if message[0] == "run":
                _run(message[1], channel, project_root, loop)
    finally:
        loop.close()


def _import(spec: str, root: Path) -> str | None:
    """Import a task module; returns the problem as text instead of raising."""
    if spec in MAIN_MODULES:
        return None  # spawn already re-imported the parent's script as __mp_main__
    try:
        import_module_or_file(spec, root)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        log.error("could not import task module %s in the process executor's child: %s: %s",
                  spec, type(exc).__name__, exc)
        return f"{type(exc).__name__}: {exc}"
    return None


def _run(request: dict[str, Any], channel: _Channel, root: Path, loop: asyncio.AbstractEventLoop) -> None:
    job: Job = request["job"]
    if request.get("path"):
        merge_sys_path(request["path"])
    problems = [f"{spec}: {p}" for spec in request["modules"] if (p := _import(spec, root))]
    task = find_task(job.task, request["modules"])
    if task is None:
        channel.send(("started", job.id, now()))
        channel.send(("result", job.id, _missing_task(job, request["modules"], problems)))
        return
    timeout = request.get("timeout")
    ctx = ChildJobContext(job=job, sink=lambda value: channel.send(("progress", job.id, value)))
    started_at = now()
    channel.send(("started", job.id, started_at))
    if timeout:
        ctx.deadline = time.monotonic() + timeout
    plugins = _plugins(tuple(request.get("plugins") or ()), root)
    try:
        if task.is_async:
            value = loop.run_until_complete(run_async(task, ctx, plugins))
        else:
            value = run_sync(task, ctx, plugins)
        payload = _success(task, value)
    except BaseException as exc:  # every ending is the job's (SystemExit too); the child lives on
        payload = _failure(task, exc, job.attempts)
    payload["started_at"] = started_at
    payload["ended_at"] = now()
    payload["rss_mb"] = peak_rss_mb()
    channel.send(("result", job.id, payload))


def find_task(name: str, modules: Sequence[str]) -> Task[Any] | None:
    """The task the worker would run: one of the task modules' own ``Task`` objects
    (``@app.task`` tasks live in their app, which this child never sees), else a
    module-level ``@task``."""
    for spec in modules:
        module = sys.modules.get(spec)
        for value in vars(module).values() if module is not None else ():
            if isinstance(value, Task) and value.name == name:
                return value
    return registry.find(name)


_loaded_plugins: dict[tuple[str, ...], NuvomPluginManager | None] = {}


def _plugins(names: tuple[str, ...], root: Path) -> NuvomPluginManager | None:
    """The plugins that wrap task execution in the worker, loaded once in this child
    from their entry points or ``.nuvom_plugins.toml`` (nothing when there are none)."""
    if not names:
        return None
    if names not in _loaded_plugins:
        _loaded_plugins[names] = None
        try:
            manager = NuvomPluginManager(root).load(only=names)
        except Exception:
            log.exception("could not load the plugins %s in the process executor's child", ", ".join(names))
            return None
        loaded = {r.name for r in manager.records.values() if r.loaded}
        missing = sorted(set(names) - loaded)
        if missing:
            log.error("plugins %s wrap task execution in the worker but could not be loaded in the process "
                      "executor's child (only entry points and .nuvom_plugins.toml are loaded there)%s",
                      ", ".join(missing),
                      "".join(f"; {r.name}: {r.error}" for r in manager.records.values() if r.error))
        _loaded_plugins[names] = manager
    return _loaded_plugins[names]


def _success(task: Task[Any], value: Any) -> dict[str, Any]:
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        message = (f"the result of task {task.name!r} (a {type(value).__name__}) cannot be sent from the "
                   f"process executor's child to the worker ({type(exc).__name__}: {exc}); return plain "
                   "data (numbers, strings, lists, dicts)")
        return {"ok": False, "error": {"type": "nuvom_kernel.errors.PayloadError", "message": message,
                                       "traceback": ""}}
    return {"ok": True, "value": data}


def _failure(task: Task[Any], exc: BaseException, attempt: int) -> dict[str, Any]:
    info = error_info(exc, attempt)
    payload: dict[str, Any] = {
        "ok": False,
        "error": {"type": info.type, "message": info.message, "traceback": info.traceback},
    }
    if isinstance(exc, Retry):
        payload["retry"] = (exc.delay, exc.reason)
    elif task.retry_on is not None:
        payload["retry_on_match"] = isinstance(exc, task.retry_on)
    return payload


def _missing_task(job: Job, modules: Sequence[str], problems: list[str]) -> dict[str, Any]:
    where = ", ".join(modules) or "(none)"
    message = (f"task {job.task!r} is not registered in the process executor's child after importing "
               f"{where}")
    if problems:
        message += "; import problems: " + "; ".join(problems)
    elif any(m in MAIN_MODULES for m in modules):
        message += ("; it is defined in the script that started the worker: move it to an importable "
                    "module (or guard the script's start-up code with `if __name__ == \"__main__\":`)")
    return {"ok": False, "error": {"type": "nuvom_kernel.errors.TaskNotFoundError", "message": message,
                                   "traceback": ""}}
