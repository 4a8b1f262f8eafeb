"""Set up .venv and run every check: ruff, mypy, pytest (kernel, plugins, root tests).

    python scripts/test.py            # what CI runs
    python scripts/test.py -k sqlite  # extra arguments go to pytest
"""

from __future__ import annotations

import subprocess
import sys

from _venv import ROOT, ensure_venv


def main(argv: list[str]) -> int:
    py = ensure_venv()
    steps = [
        [py, "-m", "ruff", "check", "."],
        [py, "-m", "mypy"],
        [py, "-m", "pytest", "-p", "no:cacheprovider", *argv],
    ]
    for cmd in steps:
        print("+", " ".join(str(c) for c in cmd), flush=True)
        code = subprocess.call([str(c) for c in cmd], cwd=ROOT)
        if code != 0:
            print(f"FAILED: {' '.join(str(c) for c in cmd)} exited {code}", flush=True)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
