"""How big the kernel is: code lines (no blank, comment or docstring lines) and
physical lines of each module of ``nuvom_kernel/`` (its conformance suites in
``nuvom_kernel/testing/`` apart).  ``python scripts/kernel_size.py``."""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _SKIP:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docstrings)
    return len(lines)


def kernel_modules(root: Path = ROOT) -> dict[str, tuple[int, int]]:
    """``{module file name: (code lines, physical lines)}`` for ``nuvom_kernel/*.py``."""
    out = {}
    for path in sorted((root / "nuvom_kernel").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        out[path.name] = (code_lines(text), len(text.splitlines()))
    return out


def main() -> int:
    sizes = kernel_modules()
    for name, (code, physical) in sorted(sizes.items(), key=lambda kv: -kv[1][0]):
        print(f"{code:6d} {physical:6d}  {name}")
    print(f"{sum(c for c, _ in sizes.values()):6d} {sum(p for _, p in sizes.values()):6d}  total (code lines, physical lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
