"""One scheduler process of the chaos test (``test_sched_chaos.py``).

Runs the real scheduler loop on the project in ``NUVOM_PROJECT_ROOT`` and
appends one line ``<job id> <pid>`` per occurrence it fired to the log file
given as argument, right after the store accepted the fire (``os.write`` on
an ``O_APPEND`` descriptor: whole lines, never interleaved).
"""

from __future__ import annotations

import os
import sys

from nuvom_scheduler.plugin import make_loop

from nuvom_kernel.app import Nuvom


def main() -> None:
    log_fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    app = Nuvom()
    pid = os.getpid()

    def fired(job: object) -> None:
        os.write(log_fd, f"{job.id} {pid}\n".encode())  # type: ignore[attr-defined]

    app.plugins.job_enqueued = fired  # type: ignore[method-assign]
    loop = make_loop(app, poll=float(sys.argv[2]), periodic=False, name=f"chaos-{pid}")
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
