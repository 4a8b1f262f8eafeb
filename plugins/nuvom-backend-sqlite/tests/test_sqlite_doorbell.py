"""The UDP doorbell (nuvom_support.doorbell) alone and through the SQLite backend."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from pathlib import Path

import pytest
from nuvom_backend_sqlite import SqliteBackend

from nuvom_kernel.models import Job
from nuvom_support.doorbell import UdpDoorbell

HERE = Path(__file__).parent


@pytest.fixture
def procs(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(HERE))
    import _nuvom_sqlite_procs

    return _nuvom_sqlite_procs


def ring_until(bell: UdpDoorbell, event: threading.Event, tries: int = 50) -> bool:
    """Datagrams may be lost in principle: ring again until heard (bounded)."""
    for _ in range(tries):
        bell.ring()
        if event.wait(0.2):
            return True
    return False


def test_subscribe_publishes_a_port_file_and_unsubscribe_removes_it(tmp_path: Path) -> None:
    bell = UdpDoorbell(tmp_path / "bell")
    unsubscribe = bell.subscribe(lambda: None)
    files = [p.name for p in (tmp_path / "bell").iterdir()]
    assert len(files) == 1 and files[0].endswith(f"-{bell.port}.port") and files[0].startswith(f"{os.getpid()}-")
    if os.name == "posix":
        assert (tmp_path / "bell").stat().st_mode & 0o777 == 0o700
    unsubscribe()
    assert list((tmp_path / "bell").iterdir()) == [] and bell.port is None
    bell.close()


def test_ring_reaches_another_instance_and_local_subscribers(tmp_path: Path) -> None:
    directory = tmp_path / "bell"
    listener, sender = UdpDoorbell(directory), UdpDoorbell(directory)
    heard, local = threading.Event(), threading.Event()
    listener.subscribe(heard.set)
    sender.subscribe(local.set)
    sender.ring()
    assert local.is_set()  # same-process subscribers are called directly
    assert heard.wait(10) or ring_until(sender, heard)
    listener.close()
    sender.close()


def test_a_burst_of_rings_is_coalesced(tmp_path: Path) -> None:
    """199 rings that arrive while the callback runs wake it once more, not 199
    times.  The callback holds the listener until the burst has been sent, so
    the result does not depend on how fast this machine is."""
    directory = tmp_path / "bell"
    listener, sender = UdpDoorbell(directory), UdpDoorbell(directory)
    calls: list[int] = []
    first, second, release = threading.Event(), threading.Event(), threading.Event()

    def on_ring() -> None:
        calls.append(1)
        (second if first.is_set() else first).set()
        assert release.wait(30), "the test never released the listener"

    listener.subscribe(on_ring)
    sender.ring()
    assert first.wait(10)  # the listener is now inside on_ring
    for _ in range(199):
        sender.ring()  # queued on the listener's socket (loopback delivers before sendto returns)
    release.set()
    assert second.wait(10)  # the backlog woke it once more...
    listener.close()  # ...and only once: close joins the listener thread
    assert len(calls) == 2
    sender.close()


def test_ring_without_subscribers_or_folder_is_harmless(tmp_path: Path) -> None:
    bell = UdpDoorbell(tmp_path / "missing")
    bell.ring()
    bell.close()
    assert not (tmp_path / "missing").exists()


def test_stale_entries_are_pruned(tmp_path: Path) -> None:
    directory = tmp_path / "bell"
    directory.mkdir()
    stale = directory / "999999-deadbeef-9.port"
    stale.touch()
    old = time.time() - 3600
    os.utime(stale, (old, old))
    (directory / "garbage.txt").touch()
    bell = UdpDoorbell(directory)
    bell.ring()
    assert not stale.exists() and (directory / "garbage.txt").exists()
    bell.close()


def test_a_failing_callback_does_not_silence_the_others(tmp_path: Path) -> None:
    bell = UdpDoorbell(tmp_path / "bell")
    hit = threading.Event()

    def broken() -> None:
        raise RuntimeError("subscriber bug")

    bell.subscribe(broken)
    bell.subscribe(hit.set)
    bell.ring()
    assert hit.is_set()
    bell.close()


def test_ring_crosses_processes(tmp_path: Path, procs) -> None:  # type: ignore[no-untyped-def]
    directory = str(tmp_path / "bell")
    ctx = multiprocessing.get_context("spawn")
    ready, heard = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=procs.listen, args=(directory, ready, heard, 2))
    child.start()
    try:
        assert isinstance(ready.get(timeout=60), int)
        bell = UdpDoorbell(directory)
        for _ in range(2):
            for _attempt in range(50):
                bell.ring()
                try:
                    assert heard.get(timeout=0.5) == "rang"
                    break
                except queue.Empty:
                    continue
            else:
                pytest.fail("the child never heard the doorbell")
        bell.close()
        child.join(60)
        assert child.exitcode == 0
        assert list(Path(directory).iterdir()) == []  # the child removed its entry
    finally:
        if child.is_alive():
            child.kill()


def test_enqueue_in_another_process_wakes_a_subscriber(tmp_path: Path, procs) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "q.db"
    backend = SqliteBackend(path)
    woke = threading.Event()
    unsubscribe = backend.subscribe(woke.set)
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=procs.enqueue_one, args=(str(path), "from-child"))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert woke.wait(30)
    assert backend.get("from-child") is not None
    unsubscribe()
    backend.close()


def test_backend_enqueue_wakes_another_backend_object(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    worker, producer = SqliteBackend(path), SqliteBackend(path)
    woke = threading.Event()
    worker.subscribe(woke.set)
    producer.enqueue(Job(task="t"))
    assert woke.wait(10)
    woke.clear()
    producer.enqueue(Job(task="t", eta=time.time() + 3600))  # not claimable yet: no ring
    producer.enqueue_many([Job(task="t")])
    assert woke.wait(10)
    worker.close()
    producer.close()
