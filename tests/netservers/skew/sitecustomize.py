"""Test-only: shift this process's wall clock by NUVOM_TEST_CLOCK_SKEW seconds (R14).

Put on PYTHONPATH of a worker process to make it a "host" whose clock is off.
"""

import os
import time

_skew = float(os.environ.get("NUVOM_TEST_CLOCK_SKEW") or 0.0)
if _skew:
    _real_time = time.time

    def _skewed_time() -> float:
        return _real_time() + _skew

    time.time = _skewed_time
