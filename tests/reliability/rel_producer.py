"""A producer process: enqueue ``rel.work`` jobs one at a time, forever (R3),
or ``COUNT`` of them with default task settings (``rel_producer.py COUNT``).

Each id is written to stdout (one line, flushed) after its enqueue returned
and before the next enqueue starts, so the harness knows exactly which
enqueues returned when it kills this process.
"""

from __future__ import annotations

import sys

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job


def main() -> None:
    app = Nuvom()  # NUVOM_PROJECT_ROOT and NUVOM_* come from the environment
    out = sys.stdout
    count = int(sys.argv[1]) if len(sys.argv) > 1 else None
    n = 0
    while count is None or n < count:
        if count is None:
            job = Job(task="rel.work", args=[n, 0], max_retries=10, retry_delay_secs=0.0, timeout_secs=None)
        else:  # default task settings: retries=0, the default lease-expiry budget
            job = Job(task="rel.work", args=[n, 0], timeout_secs=None)
        job = app.enqueue(job)
        out.write(job.id + "\n")
        out.flush()
        n += 1


if __name__ == "__main__":
    main()
