"""Idle polls that need not reach the server.

An idle worker asks for work every ``poll_interval_secs`` (1 s).  With a
healthy ``LISTEN`` connection most of those questions have a known answer:
nothing became claimable unless

- a wake-up arrived (``NOTIFY`` from another process, or this process's own
  enqueue, retry, release or sweep: every one rings the backend's doorbell),
- a scheduled job of these queues came due (the server told us the earliest
  ``ready_at`` with the last empty claim), or
- ``idle_poll_secs`` passed since the last claim that reached the server
  (the slow poll: a safety net for a notification lost in a half-open
  connection).

:class:`IdlePolls` answers "may this claim be skipped?" per set of queues.
A ring counts as news for every claim that *started* before it: the
generation is read before the claim is sent, so a job committed while the
claim ran (invisible to its snapshot) still makes the next claim real.
Expired leases need no entry here: every worker's sweep returns them to the
queue and rings (``NOTIFY``) when it does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The earliest ``ready_at`` of scheduled jobs in the given queues, and the server clock.
NEXT_DUE_SQL = (
    "SELECT extract(epoch FROM clock_timestamp())::float8, "
    "(SELECT min(ready_at) FROM {s}.jobs WHERE queue = ANY(%(queues)s::text[]) AND state = 'scheduled')"
)


@dataclass
class _Known:
    generation: int  # rings seen when the last real claim was sent
    sent_at: float  # time.monotonic() then
    empty: bool  # it claimed nothing
    next_due: float | None  # server time the next scheduled job is due (inf: none); None: not asked


class IdlePolls:
    """What the last real claim of each queue set learned, and the rings since."""

    def __init__(self, every_secs: float, listening: Callable[[], bool]) -> None:
        self.every_secs = every_secs
        self._listening = listening
        self._lock = threading.Lock()
        self._generation = 0
        self._known: dict[tuple[str, ...], _Known] = {}
        #: claims answered without a query (tests and ``nuvom postgres status`` read it)
        self.skipped = 0

    def ring(self) -> None:
        """Something may have become claimable (a doorbell subscriber)."""
        with self._lock:
            self._generation += 1

    def may_skip(self, queues: tuple[str, ...], server_now: float) -> bool:
        """True when a claim of ``queues`` now would certainly find nothing."""
        if self.every_secs <= 0 or not self._listening():
            return False
        with self._lock:
            known = self._known.get(queues)
            if (known is None or not known.empty or known.next_due is None
                    or known.generation != self._generation
                    or time.monotonic() - known.sent_at >= self.every_secs
                    or server_now >= known.next_due):
                return False
            self.skipped += 1
            return True

    def wants_next_due(self, queues: tuple[str, ...]) -> bool:
        """Send the next-due query with this claim: the previous one found nothing
        and no wake-up came since.  After a wake-up the claim most likely finds
        the new work, so it goes alone (the quickest answer to a NOTIFY); if it
        finds nothing, the next poll asks.  Claims are skipped only once asked."""
        if self.every_secs <= 0:
            return False
        with self._lock:
            known = self._known.get(queues)
            return known is not None and known.empty and known.generation == self._generation

    def before_claim(self) -> tuple[int, float]:
        """Call just before a real claim is sent; pass the result to :meth:`after_claim`."""
        with self._lock:
            return self._generation, time.monotonic()

    def after_claim(self, queues: tuple[str, ...], sent: tuple[int, float], claimed: int,
                    next_due: float | None) -> None:
        """``next_due``: the earliest due time of a scheduled job (``math.inf``
        if none), or ``None`` when the claim was sent without asking."""
        with self._lock:
            self._known[queues] = _Known(sent[0], sent[1], claimed == 0, next_due)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


def due_time(value: float | None) -> float:
    """``min(ready_at)`` as returned by :data:`NEXT_DUE_SQL`: ``inf`` for no job."""
    return math.inf if value is None else float(value)
