"""An in-process sorted cache of the file names in ``ready/<queue>/`` (or ``sched/``).

Listing a directory costs O(files), so a claim must not list on every call
(FileHuey does, and its drain rate falls as the queue grows).  The cache is
filled by one ``os.scandir``, consumed from its head, and refreshed only:

- when it runs dry (there may be new work),
- after a doorbell ring, no more often than ``min_rescan_secs`` or ten times
  the last listing's cost, whichever is longer (so listing stays a small
  fraction of the work however deep the queue), or
- after ``max_age_secs`` without any refresh (rings can be lost).

Names this process publishes itself are inserted directly.  A cached name
can be stale (another process claimed the file); the claim's rename then
fails with ``FileNotFoundError`` and the caller moves on.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class _Names:
    names: list[str] = field(default_factory=list)
    pos: int = 0
    scanned_at: float = float("-inf")
    scanned_gen: int = -1
    scan_cost: float = 0.0

    def head(self) -> str | None:
        return self.names[self.pos] if self.pos < len(self.names) else None

    def pop(self) -> str:
        name = self.names[self.pos]
        self.pos += 1
        if self.pos > 1024 and self.pos * 2 > len(self.names):
            del self.names[: self.pos]
            self.pos = 0
        return name

    def empty(self) -> bool:
        return self.pos >= len(self.names)


class NameCache:
    def __init__(
        self,
        base: Path,
        accept: Callable[[str], bool],
        *,
        min_rescan_secs: float = 0.05,
        max_age_secs: float = 1.0,
    ) -> None:
        self.base = base
        self.accept = accept
        self.min_rescan_secs = min_rescan_secs
        self.max_age_secs = max_age_secs
        self.generation = 0
        self.rejected: list[Path] = []
        self._lock = threading.Lock()
        self._queues: dict[str, _Names] = {}

    def ring(self) -> None:
        """Something may have arrived (from any process)."""
        self.generation += 1

    def add(self, queue: str, name: str) -> None:
        with self._lock:
            entry = self._queues.get(queue)
            if entry is None:
                return  # never listed: the first listing will find it
            bisect.insort(entry.names, name, lo=entry.pos)

    def _needs_scan(self, entry: _Names, at: float) -> bool:
        age = at - entry.scanned_at
        if age >= self.max_age_secs:
            return True
        if entry.empty():
            return entry.scanned_gen != self.generation or age >= self.min_rescan_secs
        if entry.scanned_gen != self.generation:
            return age >= max(self.min_rescan_secs, 10 * entry.scan_cost)
        return False

    def _scan(self, queue: str, entry: _Names) -> None:
        started = time.monotonic()
        gen = self.generation
        names: list[str] = []
        try:
            with os.scandir(self.base / queue) as entries:
                for e in entries:
                    if self.accept(e.name):
                        names.append(e.name)
                    elif not e.name.startswith("."):
                        self.rejected.append(Path(e.path))
        except FileNotFoundError:
            pass
        names.sort()
        entry.names, entry.pos = names, 0
        entry.scanned_gen = gen
        entry.scanned_at = time.monotonic()
        entry.scan_cost = entry.scanned_at - started

    def take(self, queues: Sequence[str], limit: int, *, upto: str | None = None) -> list[tuple[str, str]]:
        """Pop up to ``limit`` names across ``queues`` in global name order.

        With ``upto``, only names sorting before it are taken (used for
        ``sched/`` where the name starts with the eta).
        """
        out: list[tuple[str, str]] = []
        with self._lock:
            at = time.monotonic()
            entries = []
            for queue in queues:
                entry = self._queues.get(queue)
                if entry is None:
                    entry = self._queues[queue] = _Names()
                if self._needs_scan(entry, at):
                    self._scan(queue, entry)
                entries.append((queue, entry))
            while len(out) < limit:
                best: tuple[str, str, _Names] | None = None
                for queue, entry in entries:
                    head = entry.head()
                    if head is not None and (best is None or head < best[1]):
                        best = (queue, head, entry)
                if best is None or (upto is not None and best[1] >= upto):
                    break
                best[2].pop()
                out.append((best[0], best[1]))
        return out

    def forget(self) -> None:
        with self._lock:
            self._queues.clear()
