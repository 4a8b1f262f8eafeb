"""A cross-process "new work may be claimable" signal over UDP on 127.0.0.1.

Embedded backends (SQLite, files) have no server to push notifications, so an
idle worker would have to poll.  The doorbell makes polling the fallback
rather than the mechanism:

- every process that subscribes binds a UDP socket on 127.0.0.1 (an ephemeral
  port) and publishes the port as an empty file ``<pid>-<random>-<port>.port``
  in a shared directory (created with ``os.replace``, so it appears whole);
- :meth:`UdpDoorbell.ring` calls the callbacks of this process directly and
  sends one tiny datagram to every other registered port;
- a listener thread per subscribed process blocks in ``recv`` (no CPU while
  idle), drains queued datagrams and calls the callbacks once.

Any local user can send datagrams to 127.0.0.1, so a flood must stay cheap:
wake-ups are coalesced to at most :data:`MAX_WAKEUPS_PER_SEC` (the first
ring after a quiet spell still wakes at once), a drain reads at most
:data:`MAX_DRAIN` datagrams, and the socket's receive buffer is small, so the
kernel drops the excess before this process spends anything on it.

Datagrams can be lost and entries can go stale (a killed process leaves its
file behind), so a lost ring only costs one poll interval.  A listener
touches its file every ``heartbeat_secs``; senders delete entries older than
``stale_secs``.  Nothing here uses signals, ``fcntl`` or ``fork``, so it works
the same on Windows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nuvom_support.files import make_private_dir, retrying

__all__ = ["UdpDoorbell"]

#: Wake-ups per second at most, however many datagrams arrive.
MAX_WAKEUPS_PER_SEC = 100
#: Datagrams read per wake-up at most (the rest wait for the next one, or are dropped by the kernel).
MAX_DRAIN = 64
#: Receive buffer asked for: a few datagrams; one pending datagram is all a wake-up needs.
_RCVBUF = 4096

_HOST = "127.0.0.1"
_PING = b"\x01"
_SUFFIX = ".port"


def _port_of(name: str) -> int | None:
    """The port in a ``<pid>-<random>-<port>.port`` name, or None."""
    if not name.endswith(_SUFFIX):
        return None
    stem = name[: -len(_SUFFIX)]
    _, _, port = stem.rpartition("-")
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None


class _Listener:
    """The receiving half: one socket, one thread, one registry entry."""

    def __init__(self, directory: Path, heartbeat_secs: float, fire: Callable[[], None]) -> None:
        self._directory = directory
        self._heartbeat_secs = heartbeat_secs
        self._fire = fire
        self._stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        self.sock.bind((_HOST, 0))
        self.sock.settimeout(heartbeat_secs)
        self.port: int = self.sock.getsockname()[1]
        self.path = directory / f"{os.getpid()}-{secrets.token_hex(4)}-{self.port}{_SUFFIX}"
        self._publish()
        self._thread = threading.Thread(target=self._run, name=f"nuvom-doorbell-{self.port}", daemon=True)
        self._thread.start()

    def _publish(self) -> None:
        make_private_dir(self._directory)  # parents too: it may create .nuvom itself
        tmp = self._directory / f".{self.path.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        os.close(fd)
        if os.name == "posix":
            os.chmod(tmp, 0o600)  # whatever the umask
        retrying(os.replace, tmp, self.path)  # Windows: a reader may hold the file for a moment

    def _heartbeat(self) -> None:
        try:
            os.utime(self.path)
        except FileNotFoundError:  # pruned while we were suspended, or the folder was wiped
            with contextlib.suppress(OSError):
                self._publish()
        except OSError:
            pass

    def _run(self) -> None:
        gap = 1.0 / MAX_WAKEUPS_PER_SEC
        last_fire = -gap
        while not self._stopping.is_set():
            try:
                self.sock.recv(64)
            except TimeoutError:
                self._heartbeat()
                continue
            except OSError:
                # Windows reports an earlier ICMP "port unreachable" as
                # WSAECONNRESET on the next recv; a closed socket ends the loop.
                if self._stopping.is_set():
                    break
                continue
            wait = last_fire + gap - time.monotonic()
            if wait > 0 and self._stopping.wait(wait):  # coalesce: what arrives meanwhile is one wake-up
                break
            self._drain()
            if self._stopping.is_set():
                break
            last_fire = time.monotonic()
            self._fire()

    def _drain(self) -> None:
        """Many rings in a burst wake the callbacks once."""
        try:
            self.sock.settimeout(0)
            for _ in range(MAX_DRAIN):
                self.sock.recv(64)
        except OSError:  # BlockingIOError when empty
            pass
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(self._heartbeat_secs)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            waker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                waker.sendto(_PING, (_HOST, self.port))
            finally:
                waker.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self.sock.close()


class UdpDoorbell:
    """Wake-ups shared by every process using ``directory``.

    ``subscribe(cb)`` returns a function that unsubscribes; ``ring()`` is
    cheap (a ``stat`` of the directory and one ``sendto`` per other
    subscriber) and never raises; ``close()`` releases everything.
    Callbacks run on the listener thread (or the ringing thread for
    subscribers in the same process) and must be quick, e.g. set an Event.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        heartbeat_secs: float = 10.0,
        stale_secs: float = 60.0,
        listing_ttl_secs: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self.heartbeat_secs = heartbeat_secs
        self.stale_secs = stale_secs
        self.listing_ttl_secs = listing_ttl_secs
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._listener: _Listener | None = None
        self._send_sock: socket.socket | None = None
        self._ports: list[int] = []
        self._listed_at = 0.0
        self._listed_mtime = -1

    # -- receiving -------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)
            if self._listener is None:
                self._listener = _Listener(self.directory, self.heartbeat_secs, self._fire)
                self._listed_mtime = -1  # our own entry changed the folder

        def unsubscribe() -> None:
            listener = None
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
                if not self._callbacks and self._listener is not None:
                    listener, self._listener = self._listener, None
            if listener is not None:
                listener.stop()

        return unsubscribe

    @property
    def port(self) -> int | None:
        """This process's listening port while subscribed."""
        listener = self._listener
        return listener.port if listener is not None else None

    def _fire(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a broken subscriber must not silence the others
                pass

    # -- sending ---------------------------------------------------------------

    def ring(self) -> None:
        """Wake every subscriber, here and in other processes.  Never raises."""
        self._fire()
        try:
            ports = self._targets()
            if not ports:
                return
            sock = self._send_sock
            if sock is None:
                sock = self._send_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setblocking(False)
            for port in ports:
                try:
                    sock.sendto(_PING, (_HOST, port))
                except OSError:  # full buffer (a ring is pending anyway) or a dead port
                    pass
        except OSError:
            pass

    def _targets(self) -> list[int]:
        """Other subscribers' ports, re-listed when the folder changes or at
        most every ``listing_ttl_secs`` (for file systems with coarse mtimes)."""
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:
            return []
        at = time.monotonic()
        if mtime == self._listed_mtime and at - self._listed_at < self.listing_ttl_secs:
            return self._ports
        own = self.port
        ports: list[int] = []
        wall = time.time()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                port = _port_of(entry.name)
                if port is None or entry.name.startswith("."):
                    continue
                try:
                    age = wall - entry.stat().st_mtime
                except OSError:
                    continue
                if age > self.stale_secs:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                    continue
                if port != own:
                    ports.append(port)
        self._ports, self._listed_at, self._listed_mtime = ports, at, mtime
        return ports

    def close(self) -> None:
        with self._lock:
            self._callbacks.clear()
            listener, self._listener = self._listener, None
            sock, self._send_sock = self._send_sock, None
        if listener is not None:
            listener.stop()
        if sock is not None:
            sock.close()
