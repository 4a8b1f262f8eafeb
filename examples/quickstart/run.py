"""The quick start: a worker process and a producer, on the embedded SQLite default.

    python run.py

starts ``nuvom runworker --tasks tasks`` in a separate process, runs
``producer.py``, then stops the worker gracefully.  The queue and results live
in ``.nuvom/result.db`` here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def nuvom_command() -> list[str]:
    exe = shutil.which("nuvom", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "nuvom_cli"]


def main() -> int:
    env = dict(os.environ, NUVOM_PROJECT_ROOT=str(HERE), NUVOM_LOG_LEVEL=os.environ.get("NUVOM_LOG_LEVEL", "WARNING"))
    worker = subprocess.Popen(nuvom_command() + ["runworker", "--tasks", "tasks", "--concurrency", "4"], cwd=HERE, env=env)
    try:
        code = subprocess.call([sys.executable, "producer.py"], cwd=HERE, env=env)
    finally:
        # a portable graceful stop: the worker watches for this file
        stop = HERE / ".nuvom" / "workers" / "stop-all"
        stop.parent.mkdir(parents=True, exist_ok=True)
        stop.touch()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        finally:
            stop.unlink(missing_ok=True)
    print("quick start", "passed" if code == 0 and worker.returncode == 0 else "FAILED")
    return code or worker.returncode


if __name__ == "__main__":
    raise SystemExit(main())
