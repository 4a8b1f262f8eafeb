"""Build a wheel of every Nuvom distribution into one directory.

    python scripts/build_wheels.py                      # into dist/wheels
    python scripts/build_wheels.py DIR --with-deps      # + third-party wheels, for offline installs

Then, from anywhere (no checkout needed):

    pip install --find-links DIR nuvom                  # or, with --with-deps: --no-index --find-links DIR

The distributions: ``nuvom-kernel`` (this directory), every ``plugins/*`` and
``nuvom`` (``distributions/nuvom``: the kernel plus the standard plugins).
``--with-deps`` also downloads what they need from the package index
(pydantic, typer, cookiecutter for ``nuvom[scaffold]``, ...) and setuptools,
which building a scaffolded plugin needs.  Uses only the standard library and pip.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def projects() -> list[Path]:
    """Every distribution's directory: the kernel first, the `nuvom` set last."""
    plugins = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
    return [ROOT, *plugins, ROOT / "distributions" / "nuvom"]


def version() -> str:
    """The release these wheels are (the `nuvom` distribution's version)."""
    text = (ROOT / "distributions" / "nuvom" / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^version = "([^"]+)"', text, re.M)
    assert found, "distributions/nuvom/pyproject.toml has no version"
    return found.group(1)


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def build(out: Path, *, with_deps: bool = False, python: str = sys.executable) -> list[Path]:
    """Build every wheel into ``out``; returns the wheels of our distributions."""
    out.mkdir(parents=True, exist_ok=True)
    run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
         *[str(p) for p in projects()]])
    if with_deps:
        run([python, "-m", "pip", "download", "--quiet", "--dest", str(out), "--find-links", str(out),
             f"nuvom[all]=={version()}", "setuptools>=77", "pytest>=8"])
    return sorted(out.glob("nuvom*.whl"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "dist" / "wheels"), help="directory for the wheels")
    parser.add_argument("--with-deps", action="store_true",
                        help="also download third-party dependencies, for `pip install --no-index`")
    args = parser.parse_args(argv)
    wheels = build(Path(args.out).resolve(), with_deps=args.with_deps)
    for wheel in wheels:
        print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
