"""Wake-ups: one blocking stream read per process, no polling.

Every script that makes a job claimable appends to the stream
``{ns}:wake`` (capped at about 64 entries); a schedule added, replaced,
paused or resumed appends an entry with the field ``s``, which wakes
scheduler loops (``schedule_bell``) and not the workers' claims.  A :class:`WakeListener` thread
blocks on ``XREAD BLOCK`` for new entries and calls its subscribers; an idle
process therefore sends one blocking read every ``block_secs`` and nothing
else.  After a lost connection it reconnects with growing pauses and calls
the subscribers once, since it may have missed an entry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from nuvom_backend_redis.connection import TRANSIENT, ConnectionSettings, redact
from nuvom_support.backend_base import Doorbell

log = logging.getLogger("nuvom.backend.redis")


class WakeListener:
    def __init__(self, settings: ConnectionSettings, stream: str, block_secs: float = 10.0) -> None:
        self.settings = settings
        self.stream = stream
        self.block_secs = block_secs
        self.doorbell = Doorbell()
        #: rung for an entry about schedules (field ``s``: added, replaced, paused, resumed), not ``doorbell``
        self.schedule_bell = Doorbell()
        #: set by every wake-up (and a reconnect); cleared by a claim that goes to the server
        self.dirty = threading.Event()
        self.dirty.set()
        #: the listener is connected and reading: wake-ups will arrive
        self.healthy = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._client = settings.client(socket_timeout=block_secs + 10.0, max_connections=2)

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._start()
        return self.doorbell.subscribe(callback)

    def subscribe_schedules(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._start()
        return self.schedule_bell.subscribe(callback)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="nuvom-redis-wake", daemon=True)
                self._thread.start()

    def _ring(self, jobs: bool = True, schedules: bool = True) -> None:
        if jobs:
            self.dirty.set()
            self.doorbell.ring()
        if schedules:
            self.schedule_bell.ring()

    def _run(self) -> None:
        last = "$"
        delay = 0.05
        block_ms = int(self.block_secs * 1000)
        while not self._stop.is_set():
            try:
                if last == "$":
                    # the newest entry id: entries after it are what is new from here on
                    info = self._client.xinfo_stream(self.stream) if self._client.exists(self.stream) else None
                    last = info["last-generated-id"] if info else "0-0"
                    self.healthy.set()
                    self._ring()
                reply: Any = self._client.xread({self.stream: last}, block=block_ms, count=64)
                delay = 0.05
                if reply:
                    entries = reply[0][1]
                    last = entries[-1][0]
                    about_schedules = [bool(fields) and "s" in fields for _, fields in entries]
                    self._ring(jobs=not all(about_schedules), schedules=any(about_schedules))
            except TRANSIENT as exc:
                self.healthy.clear()
                if self._stop.is_set():
                    return
                log.info("redis wake-up reader at %s lost its connection (%s); reconnecting",
                         redact(self.settings.url), type(exc).__name__)
                last = "$"
                self._ring()  # claim by polling meanwhile
                self._stop.wait(delay)
                delay = min(2.0, delay * 2)
            except Exception as exc:  # never die silently: fall back to polling
                self.healthy.clear()
                log.warning("redis wake-up reader stopped: %s: %s", type(exc).__name__, exc)
                self._ring()
                self._stop.wait(1.0)
                last = "$"

    def close(self) -> None:
        self._stop.set()
        self.healthy.clear()
        try:  # interrupts the blocking read
            pool = getattr(self._client, "connection_pool", None)
            if pool is not None:
                pool.disconnect(inuse_connections=True)
            else:  # a cluster client: its nodes' pools
                self._client.close()
        except Exception:
            pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)
        self._client.close()
