"""A full disk under a backend, in a process of its own (issue 16, point 8).

``python rel_diskfull.py BACKEND ROOT tmpfs``: ROOT is on a small tmpfs; a
filler file takes a quarter of it, the store fills the rest, and deleting
the filler is "space returns".  Prints one JSON object:

- ``acked``: enqueues that returned; ``errors``: the exception types raised
  by the enqueues that failed; ``first_error``: the first message;
- ``drained_while_full`` (SQLite, tmpfs): jobs claimed and finished before
  any space was freed, through the reserve policy; ``full_drain_error``: the
  type of the error that stopped that drain (its purge), if any;
- ``drained``: every job finally claimed and finished (must equal ``acked``);
- ``after``: enqueues that succeeded once space returned.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, Outcome

PAYLOAD = "y" * 2000


def _drain(app: Nuvom, done: set[str], limit: int | None = None) -> None:
    """Claim and finish jobs into ``done`` (kept even if a later call raises), then purge."""
    queue = app.queue
    count = 0
    while limit is None or count < limit:
        jobs = queue.claim(["default"], 20, 60.0, "diskfull")
        if not jobs:
            break
        for job in jobs:
            assert job.token is not None
            if queue.finish(job.id, job.token, Outcome(kind="succeeded", result=None)):
                done.add(job.id)
                count += 1
    queue.purge()


def main() -> None:
    backend, root, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    filler = root / "filler"
    app = Nuvom(root=root, environ={}, queue_backend=backend, result_backend=backend)  # type: ignore[arg-type]
    app.queue  # noqa: B018 - create the store before the disk fills
    assert mode == "tmpfs", mode
    free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    with open(filler, "wb") as fh:
        fh.write(bytes(free // 4))
    acked: list[str] = []
    errors: list[str] = []
    first_error = ""
    while len(errors) < 20 and len(acked) < 100_000:
        try:
            acked.append(app.enqueue(Job(task="t", args=[PAYLOAD])).id)
        except Exception as exc:  # noqa: BLE001 - every type is reported
            errors.append(type(exc).__name__)
            first_error = first_error or str(exc)
    drained_while_full: set[str] = set()
    full_drain_error = ""
    if backend == "sqlite":
        try:
            _drain(app, drained_while_full, limit=100)
        except Exception as exc:  # noqa: BLE001 - reported; a purge that needs more room may fail cleanly
            full_drain_error = type(exc).__name__
    filler.unlink()  # space returns
    drained = set(drained_while_full)
    _drain(app, drained)
    after = 0
    for _ in range(20):
        app.enqueue(Job(task="t", args=["after"]))
        after += 1
    app.close()
    fresh = Nuvom(root=root, environ={}, queue_backend=backend, result_backend=backend)  # type: ignore[arg-type]
    queued = sum(per.get("queued", 0) for per in fresh.queue.counts().values())
    fresh.close()
    print(json.dumps({
        "acked": len(acked), "errors": sorted(set(errors)), "first_error": first_error,
        "drained_while_full": len(drained_while_full), "full_drain_error": full_drain_error,
        "drained": len(drained),
        "missing": len(set(acked) - drained), "after": after, "queued_after": queued,
    }))


if __name__ == "__main__":
    main()
