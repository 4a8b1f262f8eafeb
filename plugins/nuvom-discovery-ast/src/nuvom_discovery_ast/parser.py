"""Find the Nuvom tasks in one Python file by reading its syntax tree.

Nothing is imported or executed.  A decorator counts as Nuvom's ``@task``
only when its name resolves, through the file's own imports and
assignments, to one of :data:`TASK_DECORATORS`; a ``task`` that comes from
anywhere else (Celery's ``@app.task``, ``@invoke.task``, a local
``def task``) is left alone.
"""

from __future__ import annotations

import ast
import io
import math
import tokenize
from dataclasses import dataclass, field
from typing import Any

#: Fully qualified names under which Nuvom's task decorator is reached.
#: ``nuvom.task.task`` is the Nuvom 0.11 spelling (``from nuvom.task import task``).
TASK_DECORATORS = frozenset({"nuvom.task", "nuvom.task.task", "nuvom_kernel.task.task"})
#: ``from <module> import *`` binds ``task`` to this decorator.
STAR_EXPORTS = {
    "nuvom": "nuvom.task",
    "nuvom.task": "nuvom.task.task",
    "nuvom_kernel.task": "nuvom_kernel.task.task",
}
#: Decorator options whose values are code (hooks, key functions): they are
#: not read statically, and a non-literal value there is not a problem.
CODE_OPTIONS = frozenset(
    {"before_job", "after_job", "on_error", "on_success", "on_failure", "on_retry", "unique_key"}
)
#: Every ``kind`` of problem discovery reports (docs/discovery.md lists each).
PROBLEM_KINDS = (
    "syntax_error", "decode_error", "read_error", "nested_task", "duplicate_name",
    "non_literal_argument", "invalid_argument", "positional_argument",
    "unresolved_decorator", "unimportable_module",
)
#: Bump when the parse result for the same bytes changes, so cached entries
#: written by an older parser are parsed again.
PARSER_VERSION = 1

_MISSING = object()
_TRY_STAR: tuple[type, ...] = (ast.TryStar,) if hasattr(ast, "TryStar") else ()


def default_task_name(func_name: str) -> str:
    """The name ``@task`` gives a function when ``name=`` is not passed."""
    return func_name


@dataclass
class ParseResult:
    """The tasks (JSON-ready dicts) and problems of one file."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def problem(path: str, line: int | None, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"path": path, "line": line, "kind": kind, "message": message, **extra}


def parse_source(data: bytes, path: str) -> ParseResult:
    """Parse ``data`` (the bytes of the file at relative ``path``).

    Never raises for bad input: undecodable bytes give a ``decode_error``
    problem and invalid syntax a ``syntax_error`` problem, with no tasks.
    """
    result = ParseResult()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        result.problems.append(problem(
            path, None, "decode_error",
            f"cannot decode the file ({reason}); save it as UTF-8 or declare its "
            "encoding in a '# -*- coding: ... -*-' line. The file was skipped.",
        ))
        return result
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        result.problems.append(problem(
            path, exc.lineno, "syntax_error",
            f"invalid Python syntax: {exc.msg}; fix the file (the rest of the project "
            "was scanned). The file was skipped.",
        ))
        return result
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        result.problems.append(problem(
            path, None, "syntax_error",
            f"cannot parse the file ({exc}). The file was skipped.",
        ))
        return result
    _Scanner(path, result).block(tree.body, {}, "", None)
    return result


class _Scanner:
    """Walks statements in order, tracking what each name is bound to.

    ``bindings`` maps a local name to the dotted name it refers to
    (``"nuvom"``, ``"nuvom.task"``, ``"celery.Celery"``) or to ``None`` when
    it is bound to something defined in the file (a function, a class, an
    assignment); a name absent from ``bindings`` is unbound.
    """

    def __init__(self, path: str, result: ParseResult) -> None:
        self.path = path
        self.result = result
        self.star_sources: list[str] = []

    def block(self, body: list[ast.stmt], bindings: dict[str, str | None], prefix: str, owner: str | None) -> None:
        for node in body:
            self.statement(node, bindings, prefix, owner)

    def statement(self, node: ast.stmt, bindings: dict[str, str | None], prefix: str, owner: str | None) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bindings[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    bindings[top] = top
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name == "*":
                    if node.level == 0 and module in STAR_EXPORTS:
                        bindings["task"] = STAR_EXPORTS[module]
                    else:
                        self.star_sources.append(module)
                else:
                    bindings[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qualname = prefix + node.name
            for decorator in node.decorator_list:
                self.decorator(decorator, node, bindings, qualname, owner)
            bindings[node.name] = None
            self.block(node.body, dict(bindings), f"{qualname}.<locals>.", f"function {qualname!r}")
        elif isinstance(node, ast.ClassDef):
            qualname = prefix + node.name
            self.block(node.body, dict(bindings), f"{qualname}.", f"class {qualname!r}")
            bindings[node.name] = None
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            origin = _dotted(node.value, bindings) if node.value is not None else None
            for target in targets:
                for name in _target_names(target):
                    bindings[name] = origin if isinstance(origin, str) else None
        elif isinstance(node, (ast.If, ast.Try, *_TRY_STAR)):
            self.branches(node, bindings, prefix, owner)
        else:
            # with/for/while/match bodies share the enclosing scope.
            for child in _nested_bodies(node):
                self.block(child, bindings, prefix, owner)

    def branches(self, node: ast.stmt, bindings: dict[str, str | None], prefix: str, owner: str | None) -> None:
        """Scan alternative branches (if/else, try/except) separately, then merge.

        An import beats a local fallback: after ``try: from nuvom import task``
        / ``except ImportError: def task(f): return f``, ``task`` is Nuvom's.
        """
        if isinstance(node, ast.If):
            alternatives = [node.body, node.orelse]
        else:
            handlers = [h.body for h in getattr(node, "handlers", [])]
            alternatives = [getattr(node, "body", []) + getattr(node, "orelse", []), *handlers]
        merged: dict[str, str | None] = {}
        for body in alternatives:
            scope = dict(bindings)
            self.block(body, scope, prefix, owner)
            for name, origin in scope.items():
                if name not in merged or (merged[name] is None and origin is not None):
                    merged[name] = origin
        bindings.update(merged)
        self.block(getattr(node, "finalbody", []), bindings, prefix, owner)

    def decorator(
        self,
        decorator: ast.expr,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        bindings: dict[str, str | None],
        qualname: str,
        owner: str | None,
    ) -> None:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        resolved = _dotted(target, bindings)
        if resolved is _MISSING:
            self.unresolved(target, decorator.lineno)
            return
        if resolved not in TASK_DECORATORS:
            return
        line = func.lineno
        if owner is not None:
            self.result.problems.append(problem(
                self.path, line, "nested_task",
                f"task {qualname!r} is defined inside {owner}; the worker can only load "
                "tasks defined at the top level of a module: move it there.",
                qualname=qualname,
            ))
            return
        options = self.options(decorator, func.name) if isinstance(decorator, ast.Call) else {}
        name = options.pop("name", _MISSING)
        self.result.tasks.append({
            "name": name if isinstance(name, str) else default_task_name(func.name),
            "qualname": qualname,
            "line": line,
            "is_async": isinstance(func, ast.AsyncFunctionDef),
            "options": options,
        })

    def options(self, call: ast.Call, func_name: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for arg in call.args:
            self.result.problems.append(problem(
                self.path, arg.lineno, "positional_argument",
                f"@task on {func_name!r} has a positional argument; pass options by keyword "
                "(name=..., retries=...) so they can be read without importing the module.",
            ))
        for kw in call.keywords:
            if kw.arg is None:
                self.non_literal(kw.value.lineno, func_name, "**", "'**' options")
                continue
            if kw.arg in CODE_OPTIONS:
                continue
            try:
                value = _json_ready(ast.literal_eval(kw.value))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                self.non_literal(kw.value.lineno, func_name, kw.arg, f"{kw.arg}={ast.unparse(kw.value)}")
                continue
            if kw.arg == "name" and not isinstance(value, str):
                self.result.problems.append(problem(
                    self.path, kw.value.lineno, "invalid_argument",
                    f"@task on {func_name!r}: name must be a string, got {value!r}; "
                    f"the task is listed as {default_task_name(func_name)!r}.",
                    argument="name",
                ))
                continue
            options[kw.arg] = value
        return options

    def non_literal(self, line: int, func_name: str, argument: str, shown: str) -> None:
        if argument == "name":
            consequence = (
                f"the task is listed as {default_task_name(func_name)!r}, which may not be its "
                "real name: write the name as a string literal."
            )
        else:
            consequence = "the option is not shown by 'nuvom list tasks' (it still applies when the task runs)."
        self.result.problems.append(problem(
            self.path, line, "non_literal_argument",
            f"@task on {func_name!r}: {shown} is not a literal value, so it cannot be read "
            f"without importing the module; {consequence}",
            argument=argument,
        ))

    def unresolved(self, target: ast.expr, line: int) -> None:
        """Report a ``task`` decorator whose name is bound nowhere in the file."""
        parts = _parts(target)
        if not parts or parts[-1] != "task":
            return
        shown = ".".join(parts)
        where = (
            f" (it may come from 'from {self.star_sources[0]} import *')" if self.star_sources else ""
        )
        self.result.problems.append(problem(
            self.path, line, "unresolved_decorator",
            f"@{shown} is not imported in this file{where}, so it is not taken for a Nuvom "
            "task; if it is Nuvom's decorator, write 'from nuvom import task' in this file.",
        ))


def _parts(expr: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return []
    parts.append(expr.id)
    return parts[::-1]


def _dotted(expr: ast.expr, bindings: dict[str, str | None]) -> Any:
    """The dotted name ``expr`` refers to, ``None`` if it refers to something
    local or computed, or ``_MISSING`` if its first name is unbound."""
    parts = _parts(expr)
    if not parts:
        return None
    if parts[0] not in bindings:
        return _MISSING
    origin = bindings[parts[0]]
    if origin is None:
        return None
    return ".".join([origin, *parts[1:]])


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _target_names(elt)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _nested_bodies(node: ast.stmt) -> list[list[ast.stmt]]:
    bodies: list[list[ast.stmt]] = []
    for attr in ("body", "orelse", "finalbody"):
        value = getattr(node, attr, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            bodies.append(value)
    for handler in getattr(node, "handlers", ()) or ():
        bodies.append(handler.body)
    for case in getattr(node, "cases", ()) or ():
        bodies.append(case.body)
    return bodies


def _json_ready(value: Any) -> Any:
    """Literal values as JSON values: tuples and sets become lists."""
    if isinstance(value, (tuple, list)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_json_ready(v) for v in value), key=repr)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("dict keys must be strings")
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"{type(value).__name__} is not a JSON value")
