"""Shared by quickstart.py and test.py: make .venv and install the monorepo into it.

Uses only the standard library, so it runs on a fresh machine with Python and pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NUVOM_VENV", ROOT / ".venv"))


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)  # type: ignore[call-overload]


def ensure_venv(requirements: str = "requirements-dev.txt") -> Path:
    """Create .venv if needed, upgrade pip, install the monorepo editable."""
    py = venv_python()
    if not py.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([py, "-m", "pip", "install", "--quiet", "-r", ROOT / requirements], cwd=ROOT)
    return py


if __name__ == "__main__":
    sys.exit("import this module; run quickstart.py or test.py")
