"""The kernel stays small and self-contained (issue: plugin platform v2).

- no module of ``nuvom_kernel/`` (its conformance suites apart) is over 400 lines,
  and its code lines (``scripts/kernel_size.py``) stay under a ceiling that only
  comes down;
- the kernel imports nothing of ``nuvom_support``, the ``nuvom`` facade or any plugin;
- ``nuvom/`` only re-exports: it defines no function or class of its own.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "nuvom_kernel"
MAX_LINES = 400
#: The kernel's code lines (scripts/kernel_size.py) may not grow past this: lower it
#: when the kernel shrinks; raising it needs a reason in the commit that does.
MAX_CODE_LINES = 3865

spec = importlib.util.spec_from_file_location("kernel_size", ROOT / "scripts" / "kernel_size.py")
assert spec is not None and spec.loader is not None
kernel_size = importlib.util.module_from_spec(spec)
sys.modules["kernel_size"] = kernel_size
spec.loader.exec_module(kernel_size)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_kernel_module_is_over_400_lines() -> None:
    sizes = kernel_size.kernel_modules(ROOT)
    assert len(sizes) > 20  # the scan sees the kernel
    over = {name: physical for name, (_, physical) in sizes.items() if physical > MAX_LINES}
    assert not over, f"split these kernel modules (over {MAX_LINES} lines): {over}"


def test_the_kernel_does_not_grow_back() -> None:
    sizes = kernel_size.kernel_modules(ROOT)
    total = sum(code for code, _ in sizes.values())
    largest = ", ".join(f"{name} {code}" for name, (code, _) in sorted(sizes.items(), key=lambda kv: -kv[1][0])[:5])
    assert total <= MAX_CODE_LINES, (
        f"nuvom_kernel/ has {total} code lines, over its ceiling of {MAX_CODE_LINES} (largest: {largest}); "
        "move what is not kernel to nuvom_support/ or a plugin, or raise the ceiling with a reason")


def test_the_kernel_imports_no_support_facade_or_plugin_code() -> None:
    plugin_packages = {p.name for d in (ROOT / "plugins").glob("*/src") for p in d.iterdir() if p.is_dir()}
    assert "nuvom_backend_sqlite" in plugin_packages
    forbidden = {"nuvom", "nuvom_support"} | plugin_packages
    bad = {}
    for path in KERNEL.rglob("*.py"):
        found = _imports(path) & forbidden
        if found:
            bad[str(path.relative_to(ROOT))] = sorted(found)
    assert not bad, f"the kernel must not import these (move the code or call a hook): {bad}"


def test_the_facade_only_reexports() -> None:
    defined = {}
    for path in (ROOT / "nuvom").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.setdefault(str(path.relative_to(ROOT)), []).append(node.name)
    assert not defined, f"nuvom/ re-exports only; move these into nuvom_kernel or nuvom_support: {defined}"


def test_code_lines_count_code_only() -> None:
    source = '"""Doc\n\nstring."""\n\n# a comment\nx = 1  # trailing\n\n\ndef f():\n    """Doc."""\n    return (\n        x\n    )\n'
    assert kernel_size.code_lines(source) == 5  # x = 1; def f(); return ( ; x ; )
