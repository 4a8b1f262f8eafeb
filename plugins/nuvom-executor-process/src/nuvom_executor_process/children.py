"""One spawned child process and its two pipes, seen from the parent."""

from __future__ import annotations

import logging
import pickle
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

from nuvom_executor_process.child import child_main

log = logging.getLogger("nuvom.executor.process")


class Child:
    """A child process: ``task_w`` carries jobs to it, ``res_r`` everything back.

    Only the executor's supervisor thread reads ``res_r`` and closes it; any
    thread may send, one at a time (``send_lock``).
    """

    def __init__(self, process: SpawnProcess, task_w: Connection, res_r: Connection, path: tuple[str, ...]) -> None:
        self.process = process
        self.task_w = task_w
        self.res_r = res_r
        self.pid = process.pid
        self.ready = False
        self.tasks_done = 0
        self.path_sent = path  # the sys.path this child was given last
        self.send_lock = threading.Lock()
        self._send_closed = False

    def __repr__(self) -> str:
        return f"<Child pid={self.pid} tasks_done={self.tasks_done}>"

    def send_data(self, data: bytes) -> None:
        """Send an already pickled message; ``OSError`` if the child is gone."""
        with self.send_lock:
            if self._send_closed:
                raise OSError("the child's job pipe is closed")
            self.task_w.send_bytes(data)

    def close_send(self) -> None:
        with self.send_lock:
            if not self._send_closed:
                self._send_closed = True
                self.task_w.close()

    def terminate(self, grace: float) -> None:
        """Stop it now: terminate(), then kill() if it has not exited after ``grace`` s."""
        proc = self.process
        if proc.exitcode is None:
            try:
                proc.terminate()
            except (OSError, ValueError):
                pass
            proc.join(grace)
        if proc.exitcode is None:
            log.warning("child pid %s did not exit %.1f s after terminate(); killing it", self.pid, grace)
            try:
                proc.kill()
            except (OSError, ValueError):
                pass
            proc.join(max(5.0, grace))

    def stop(self, timeout: float, grace: float) -> None:
        """Stop an idle child cleanly (it finishes its loop), or terminate it after ``timeout``."""
        try:
            self.send_data(pickle.dumps(("stop",)))
        except (OSError, ValueError):
            pass
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.terminate(grace)

    def release(self) -> None:
        """Free the process object's resources once it has exited."""
        try:
            if self.process.exitcode is not None:
                self.process.close()
        except ValueError:
            pass


def spawn_child(ctx: SpawnContext, index: int, root: Path, modules: Sequence[str], log_level: int) -> Child:
    """Start a child with the spawn method; it preloads ``modules`` before saying it is ready."""
    task_r, task_w = ctx.Pipe(duplex=False)
    res_r, res_w = ctx.Pipe(duplex=False)
    path = tuple(sys.path)
    args: tuple[Any, ...] = (task_r, res_w, str(root), list(modules), list(path), log_level)
    process = ctx.Process(target=child_main, args=args, name=f"nuvom-process-{index}", daemon=False)
    try:
        process.start()
    except BaseException:
        for conn in (task_r, task_w, res_r, res_w):
            conn.close()
        raise
    # the child has its own copies now; closing ours lets EOF tell us when it dies
    task_r.close()
    res_w.close()
    return Child(process, task_w, res_r, path)


def stop_children(children: Sequence[tuple[Child, bool]], timeout: float, grace: float) -> None:
    """Stop several children at once: idle ones (``True``) cleanly, busy ones with terminate()."""
    for child, idle in children:
        if idle:
            try:
                child.send_data(pickle.dumps(("stop",)))
            except (OSError, ValueError):
                pass
        else:
            try:
                child.process.terminate()
            except (OSError, ValueError):
                pass
    for child, _ in children:
        child.process.join(timeout)
        child.terminate(grace)
