"""One of R9's processes: enqueue and claim on one store (a SQLite file, a
PostgreSQL schema) for N seconds.

Prints one JSON line: counts, and every exception that reached this "user"
(a ``database is locked``, a deadlock or a serialization failure must never
be among them).  Exit 0 when none.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback

from nuvom_kernel.app import Nuvom
from nuvom_kernel.contracts import Completion
from nuvom_kernel.models import Job, Outcome


def main(seconds: float, name: str) -> int:
    app = Nuvom()
    queue = app.queue
    rng = random.Random(name)
    enqueued = finished = rounds = 0
    errors: list[str] = []
    pending: list[Completion] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rounds += 1
        try:
            if rng.random() < 0.5:
                app.enqueue(Job(task="rel.work", args=[rounds, 0]))
                enqueued += 1
            else:
                app.enqueue_many([Job(task="rel.work", args=[rounds, i]) for i in range(rng.randint(2, 40))])
                enqueued += 1
            n = rng.randint(1, 32)
            _, claimed, _ = queue.exchange(pending, ["default"], n, 30.0, name, start_now=n)
            finished += len(pending)
            pending = [Completion(j.id, j.token or 0, Outcome(kind="succeeded", result=j.args[0])) for j in claimed]
            if rng.random() < 0.02:
                queue.sweep()
        except Exception as exc:  # anything here reached a user
            errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-800:]}")
    if pending:
        queue.exchange(pending, ["default"], 0, 30.0, name)
        finished += len(pending)
    app.close()
    locked = sum("locked" in e.lower() or "busy" in e.lower() for e in errors)
    print(json.dumps({"name": name, "rounds": rounds, "enqueue_calls": enqueued, "finished": finished,
                      "locked": locked, "errors": errors[:5], "error_count": len(errors)}), flush=True)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]), sys.argv[2]))
