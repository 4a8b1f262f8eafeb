"""Set up .venv and run the quick start (a worker process + a producer on SQLite).

    python scripts/quickstart.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from _venv import ROOT, ensure_venv


def main() -> int:
    py = ensure_venv()
    example = ROOT / "examples" / "quickstart"
    shutil.rmtree(example / ".nuvom", ignore_errors=True)  # start from an empty queue
    return subprocess.call([str(py), "run.py"], cwd=example)


if __name__ == "__main__":
    sys.exit(main())
