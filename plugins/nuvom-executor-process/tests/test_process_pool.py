"""The pool itself: hard timeouts (R8), crashes, recycling, cancel, shutdown."""

from __future__ import annotations

import importlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nuvom_executor_process import ProcessExecutor

from nuvom_kernel.testing.executor_contract import Collector

Make = Callable[..., ProcessExecutor]
Item = Callable[..., Any]
RunOne = Callable[..., Any]
TIMEOUT = 0.5
BOUND = TIMEOUT + 1 + 1.5  # R8: timeout + 1 s, with a margin for a loaded machine


def _gone(pid: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A listening socket on 127.0.0.1 that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("blocked_in", ["sleep", "recv"])
def test_hard_timeout_terminates_a_blocked_task(make_executor: Make, item: Item, run_one: RunOne,
                                                silent_server: int, blocked_in: str) -> None:
    ex = make_executor()
    first_pid = run_one(ex, item("proc.pid")).value  # warm: the child is up and has imported the tasks
    blocked = item("proc.sleep", 60) if blocked_in == "sleep" else item("proc.recv", silent_server)
    blocked.timeout_secs = blocked.job.timeout_secs = TIMEOUT
    begin = time.monotonic()
    result = run_one(ex, blocked)
    elapsed = time.monotonic() - begin
    assert result.timed_out and not result.still_running and not result.ok
    assert elapsed < BOUND, f"reported after {elapsed:.2f} s"
    assert result.extra["pid"] == first_pid and result.extra["exitcode"] is not None
    assert _gone(first_pid), "the blocked child is still alive"
    assert result.error is not None and "terminated its child" in result.error.message
    after = run_one(ex, item("proc.pid"))  # the pool keeps working, in a fresh child
    assert after.ok and after.value != first_pid
    assert ex.free_slots() == 1


def test_time_remaining_counts_down_in_the_child(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    result = run_one(ex, item("proc.time_left", timeout=30))
    assert result.ok and 0 < result.value <= 30
    assert run_one(ex, item("proc.time_left")).value is None


@pytest.mark.parametrize("how", ["os._exit", "SIGKILL"])
def test_a_child_that_dies_mid_job_reports_crashed_and_is_replaced(make_executor: Make, item: Item,
                                                                   run_one: RunOne, how: str,
                                                                   tmp_path: Path) -> None:
    if how == "SIGKILL" and sys.platform == "win32":  # pragma: no cover
        pytest.skip("no signals on Windows")
    ex = make_executor()
    pid = run_one(ex, item("proc.pid")).value
    if how == "os._exit":
        result = run_one(ex, item("proc.exit", 3))
        expected = "exited with code 3"
    else:
        watched = Collector()
        marker = tmp_path / "started"
        ex.submit(item("proc.touch_then_sleep", str(marker), 60), watched)
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)
        os.kill(pid, 9)
        result = watched.wait(1)[0]
        expected = "killed by signal SIGKILL (9)"
    assert result.crashed and not result.ok and not result.timed_out
    assert result.error is not None and result.error.type == "nuvom.WorkerCrash"
    assert expected in result.error.message and f"pid {pid}" in result.error.message
    again = run_one(ex, item("proc.pid"))
    assert again.ok and again.value != pid


def test_max_tasks_per_child_recycles(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor(max_tasks_per_child=2)
    pids = [run_one(ex, item("proc.pid")).value for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(set(pids)) == 3


def test_max_memory_per_child_recycles(make_executor: Make, item: Item, run_one: RunOne) -> None:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("measured through ctypes on Windows; covered by the POSIX run")
    probe = make_executor()
    baseline = run_one(probe, item("proc.rss")).value
    assert baseline and baseline > 1
    ex = make_executor(max_memory_per_child=baseline + 60)
    small = [run_one(ex, item("proc.pid")).value for _ in range(3)]
    assert len(set(small)) == 1  # under the limit: the same child every time
    assert run_one(ex, item("proc.alloc", 120)).value == 120  # peak goes over the limit
    assert run_one(ex, item("proc.pid")).value != small[0]


def test_children_are_reused_across_jobs(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor(concurrency=2)
    done = Collector()
    for _ in range(20):
        ex.submit(item("proc.pid"), done)
    pids = {r.value for r in done.wait(20)}
    assert 1 <= len(pids) <= 2


def test_cancel_terminates_the_running_child(make_executor: Make, item: Item, run_one: RunOne,
                                             tmp_path: Path) -> None:
    ex = make_executor()
    pid = run_one(ex, item("proc.pid")).value
    marker = tmp_path / "started"
    running, waiting = Collector(), Collector()
    target = item("proc.touch_then_sleep", str(marker), 60)
    queued = item("proc.pid")
    ex.submit(target, running)
    ex.submit(queued, waiting)
    assert ex.free_slots() == 0
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.01)
    assert ex.cancel(target.job.id)
    result = running.wait(1)[0]
    assert result.cancelled and not result.ok and result.extra["pid"] == pid
    assert _gone(pid)
    assert waiting.wait(1)[0].value not in (None, pid)  # the queued job ran in the replacement
    assert not ex.cancel(target.job.id)  # already reported
    assert not ex.cancel("no-such-job")


def test_cancel_a_job_waiting_for_a_child(make_executor: Make, item: Item, tmp_path: Path) -> None:
    ex = make_executor()
    marker = tmp_path / "started"
    first, second = Collector(), Collector()
    blocker = item("proc.touch_then_sleep", str(marker), 60)
    waiting = item("proc.pid")
    ex.submit(blocker, first)
    ex.submit(waiting, second)
    assert ex.cancel(waiting.job.id)
    result = second.wait(1)[0]
    assert result.cancelled and result.started_at == 0.0
    assert ex.cancel(blocker.job.id)
    assert first.wait(1)[0].cancelled


def test_shutdown_wait_lets_running_jobs_finish(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor(concurrency=2)
    pids = {run_one(ex, item("proc.pid")).value}
    done = Collector()
    ex.submit(item("proc.sleep", 0.3), done)
    ex.submit(item("proc.sleep", 0.3), done)
    ex.shutdown(wait=True)
    assert [r.value for r in done.results] == ["slept", "slept"]
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(item("proc.pid"), done)


def test_shutdown_without_wait_stops_running_children(make_executor: Make, item: Item, run_one: RunOne) -> None:
    ex = make_executor()
    pid = run_one(ex, item("proc.pid")).value
    done = Collector()
    ex.submit(item("proc.sleep", 60), done)
    begin = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - begin < 10
    [result] = done.wait(1)
    assert not result.ok and result.crashed and "shut down" in (result.error.message if result.error else "")
    assert _gone(pid)


def test_free_slots_count_waiting_jobs(make_executor: Make, item: Item, tmp_path: Path) -> None:
    ex = make_executor(concurrency=2)
    assert ex.free_slots() == 2
    done = Collector()
    gate = tmp_path / "gate"
    for _ in range(3):
        ex.submit(item("nuvom_contract.wait_file", str(gate)), done)
    assert ex.free_slots() == 0
    gate.touch()
    assert all(r.ok for r in done.wait(3))
    deadline = time.monotonic() + 30
    while ex.free_slots() != 2:
        assert time.monotonic() < deadline, "slots were not freed"
        time.sleep(0.01)


def test_sys_path_added_after_start_reaches_the_children(item: Item, run_one: RunOne, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ex = ProcessExecutor(root=tmp_path)
    ex.start(1)
    try:
        extra = tmp_path / "late"
        extra.mkdir()
        (extra / "late_tasks.py").write_text(
            "from nuvom_kernel.task import task\n\n@task(name='late.hello')\ndef hello():\n    return 'hi'\n"
        )
        monkeypatch.syspath_prepend(str(extra))
        importlib.import_module("late_tasks")
        assert run_one(ex, item("late.hello")).value == "hi"
    finally:
        ex.shutdown(wait=False)


def test_children_that_cannot_start_are_retried_then_reported(item: Item, run_one: RunOne,
                                                                proc_tasks: Any) -> None:
    ex = ProcessExecutor(root=Path(proc_tasks.__file__).parent)
    ex._modules["proc_exit_on_import"] = None  # white box: every new child now dies while starting
    ex.start(1)
    try:
        result = run_one(ex, item("proc.pid"))  # handed to the next child twice, then reported
        assert result.crashed and result.error is not None
        assert "exited with code 5 before it was ready" in result.error.message
        ex._modules.clear()  # white box: the cause is fixed: the next child (after a back-off) starts
        assert run_one(ex, item("proc.pid")).ok
    finally:
        ex.shutdown(wait=False)


def test_a_module_that_kills_its_importer_is_not_preloaded(make_executor: Make, item: Item,
                                                           run_one: RunOne) -> None:
    ex = make_executor()
    killer = item("proc.pid")
    killer.modules = ("proc_exit_on_import",)
    result = run_one(ex, killer)
    assert result.crashed and result.error is not None and "exited with code 5" in result.error.message
    assert "before it was ready" not in result.error.message
    assert run_one(ex, item("proc.pid")).ok  # the replacement did not import it while starting


def test_child_memory_is_not_its_parents_peak(make_executor: Make, item: Item, run_one: RunOne) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux carries ru_maxrss across exec; other platforms are measured differently")
    import resource

    ballast = bytearray(300 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):  # make the parent's peak large
        ballast[i] = 1
    parent_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = run_one(make_executor(), item("proc.rss")).value
    del ballast
    assert child_mb < parent_peak_mb - 200, (child_mb, parent_peak_mb)
