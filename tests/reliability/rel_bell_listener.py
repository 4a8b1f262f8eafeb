"""A doorbell listener in its own process (the UDP flood test, issue 16 point 9).

Prints its port, then waits for a line on stdin; prints the number of
wake-up callbacks and this process's CPU seconds since the port was printed.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from nuvom_support.doorbell import UdpDoorbell

if __name__ == "__main__":
    bell = UdpDoorbell(Path(sys.argv[1]))
    count = 0
    lock = threading.Lock()

    def wake() -> None:
        global count
        with lock:
            count += 1

    unsubscribe = bell.subscribe(wake)
    cpu = time.process_time()
    print(bell.port, flush=True)
    sys.stdin.readline()
    time.sleep(0.2)  # let the listener finish what is queued
    print(count, round(time.process_time() - cpu, 3), flush=True)
    unsubscribe()
    bell.close()
