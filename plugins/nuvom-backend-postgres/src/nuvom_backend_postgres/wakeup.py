"""Wake-ups: a coalesced NOTIFY hint, one LISTEN connection per process, and polling.

An enqueue that adds claimable work sends ONE ``pg_notify`` per transaction
(not a trigger per row; identical notifications of a transaction are folded
into one by the server), inside the same transaction, so it is delivered only
if the jobs are committed.  A listener thread holds one connection doing
``LISTEN`` and rings the in-process doorbell; after a lost connection it
reconnects with backoff and rings once (work may have arrived meanwhile).
The worker's poll (``poll_interval_secs``) stays the fallback, so a lost
notification only delays a job until the next poll.

``wakeups = "poll"`` turns both off: PgBouncer in transaction mode cannot
carry ``LISTEN``, and a poll-only deployment sends no NOTIFY either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from nuvom_support.backend_base import Doorbell

log = logging.getLogger("nuvom.postgres")


def channel_name(schema: str) -> str:
    return f"nuvom_{schema}"


#: The payload of a NOTIFY about schedules (added, replaced, paused, resumed); job wake-ups have ''.
SCHEDULES_PAYLOAD = "schedules"


class Listener:
    """Rings ``doorbell`` on every notification of ``channel``, in a daemon thread."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str, doorbell: Doorbell,
                 where: str, schedule_bell: Doorbell | None = None) -> None:
        self._connect = connect
        self.channel = channel
        self.doorbell = doorbell
        #: rung for a notification about schedules (scheduler loops wait on it), not ``doorbell``
        self.schedule_bell = schedule_bell or Doorbell()
        self.where = where
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        #: set while a LISTEN connection is established (tests and idle logic read it)
        self.listening = threading.Event()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name=f"nuvom-pg-listen-{self.channel}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        delay = 0.05
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                log.info("postgres LISTEN connection to %s failed (%s); retrying in %.2f s",
                         self.where, type(exc).__name__, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            with self._lock:
                self._conn = conn
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self.listening.set()
                delay = 0.05
                if not first:
                    self.doorbell.ring()  # notifications sent while we were away are lost: look now
                    self.schedule_bell.ring()
                first = False
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=1.0, stop_after=1):
                        if note.payload == SCHEDULES_PAYLOAD:
                            self.schedule_bell.ring()
                        else:
                            self.doorbell.ring()
            except Exception as exc:
                if not self._stop.is_set():
                    log.info("postgres LISTEN connection to %s lost (%s); reconnecting", self.where, type(exc).__name__)
            finally:
                self.listening.clear()
                with self._lock:
                    self._conn = None
                try:
                    conn.close()
                except Exception:  # pragma: no cover
                    pass
            self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is not None:
            thread.join(timeout=3.0)
