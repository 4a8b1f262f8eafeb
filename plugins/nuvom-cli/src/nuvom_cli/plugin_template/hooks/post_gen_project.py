"""Keep only the modules and tests of the chosen kind, and no byte code."""

from __future__ import annotations

import shutil
from pathlib import Path

KIND = "{{ cookiecutter.kind }}"
PACKAGE = Path("src") / "{{ cookiecutter.package_name }}"
MODULES = {
    "queue-backend": "queue.py",
    "result-backend": "results.py",
    "executor": "executor.py",
    "discoverer": "discoverer.py",
    "commands": "commands.py",
    "lifecycle": "observer.py",
}
CONTRACT_KINDS = {"queue-backend", "result-backend", "executor", "discoverer"}

for kind, module in MODULES.items():
    if kind != KIND:
        (PACKAGE / module).unlink()
if KIND not in CONTRACT_KINDS:
    (Path("tests") / "test_{{ cookiecutter.package_name }}_contract.py").unlink()

# an installed template may carry byte code compiled at install time: never copy it out
for cache in sorted(Path(".").rglob("__pycache__")):
    shutil.rmtree(cache)
