"""Shared by quickstart.py and test.py: make .venv and install the monorepo into it.

Uses only the standard library, so it runs on a fresh machine with Python and pip.
pip runs only when something it reads changed: a stamp in the venv holds a hash
of the requirements file and every pyproject.toml (the installs are editable, so
code changes need no reinstall).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NUVOM_VENV", ROOT / ".venv"))
STAMP = "nuvom-install.stamp"


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)  # type: ignore[call-overload]


def install_inputs(requirements: str) -> list[Path]:
    """Every file whose change needs pip to run again."""
    projects = sorted(ROOT.glob("plugins/*/pyproject.toml")) + sorted(ROOT.glob("distributions/*/pyproject.toml"))
    return [ROOT / requirements, ROOT / "pyproject.toml", *projects]


def inputs_hash(requirements: str) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for path in install_inputs(requirements):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
    return digest.hexdigest()


def ensure_venv(requirements: str = "requirements-dev.txt") -> Path:
    """Create .venv if needed; upgrade pip and install the monorepo editable,
    unless nothing pip reads changed since the last install."""
    py = venv_python()
    stamp = VENV / STAMP
    wanted = inputs_hash(requirements)
    if py.exists() and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted:
        print(f"{VENV} is up to date (delete {stamp} to reinstall)", flush=True)
        return py
    if not py.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    stamp.unlink(missing_ok=True)  # an interrupted install must run again next time
    run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([py, "-m", "pip", "install", "--quiet", "-r", ROOT / requirements], cwd=ROOT)
    stamp.write_text(wanted + "\n", encoding="utf-8")
    return py


if __name__ == "__main__":
    sys.exit("import this module; run quickstart.py or test.py")
