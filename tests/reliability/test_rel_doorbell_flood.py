"""A UDP flood against a worker's doorbell costs little CPU (issue 16, point 9).

Another local user can send datagrams to the doorbell port of any worker (the
port is in a file name, and UDP on 127.0.0.1 has no access control).  Before
the fix every datagram that found the listener waiting cost a wake-up and a
callback: a flood pinned a core.  Now wake-ups are coalesced to at most
:data:`~nuvom_support.doorbell.MAX_WAKEUPS_PER_SEC` and the socket's buffer is
small, so the kernel drops the excess before the listener sees it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from nuvom_support.doorbell import MAX_WAKEUPS_PER_SEC
from reliability.harness import HERE, describe, size


def test_a_udp_flood_costs_the_listener_little_cpu(tmp_path: Path) -> None:
    datagrams = size(200_000, 1_000_000)
    listener = subprocess.Popen([sys.executable, str(HERE / "rel_bell_listener.py"), str(tmp_path / "bell")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdin is not None
        port = int(listener.stdout.readline())
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        started = time.monotonic()
        for _ in range(datagrams):
            try:
                sender.sendto(b"\x01", ("127.0.0.1", port))
            except OSError:
                pass
        elapsed = time.monotonic() - started
        sender.close()
        listener.stdin.write("done\n")
        listener.stdin.flush()
        wakeups, cpu = listener.stdout.readline().split()
        listener.wait(30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(30)
    wakeups_n, cpu_s = int(wakeups), float(cpu)
    describe({"property": "doorbell-flood", "datagrams": datagrams, "flood_secs": round(elapsed, 2),
              "wakeups": wakeups_n, "listener_cpu_secs": cpu_s})
    # coalesced: at most the rate limit over the flood (+ the 0.2 s tail and slack)
    assert wakeups_n <= MAX_WAKEUPS_PER_SEC * (elapsed + 0.5) + 5, (wakeups_n, elapsed)
    # generous (5x what the fix measures): a tenth of a core; before the fix about a quarter
    assert cpu_s <= elapsed / 10 + 0.1, (cpu_s, elapsed)
