"""Which decorators are Nuvom tasks, and what is read from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from nuvom_discovery_ast import AstDiscoverer
from nuvom_discovery_ast.parser import parse_source

POSITIVE = {
    "bare": "from nuvom import task\n@task\ndef f(): ...\n",
    "called": "from nuvom import task\n@task()\ndef f(): ...\n",
    "module_attr": "import nuvom\n@nuvom.task\ndef f(): ...\n",
    "module_attr_called": "import nuvom\n@nuvom.task(retries=1)\ndef f(): ...\n",
    "alias": "from nuvom import task as t\n@t\ndef f(): ...\n",
    "module_alias_called": "import nuvom as n\n@n.task(queue='q')\ndef f(): ...\n",
    "legacy_0_11_path": "from nuvom.task import task\n@task\ndef f(): ...\n",
    "legacy_module_alias": "import nuvom.task as tm\n@tm.task\ndef f(): ...\n",
    "star": "from nuvom import *\n@task\ndef f(): ...\n",
    "assigned_alias": "from nuvom import task\nmy_task = task\n@my_task\ndef f(): ...\n",
    "stacked": "import functools\nfrom nuvom import task\n@task\n@functools.lru_cache\ndef f(): ...\n",
    "optional_import": (
        "try:\n    from nuvom import task\nexcept ImportError:\n    def task(fn):\n        return fn\n"
        "@task\ndef f(): ...\n"
    ),
    "conditional_import": "import sys\nif sys.version_info >= (3, 10):\n    from nuvom import task\n@task\ndef f(): ...\n",
}

NEGATIVE = {
    "celery_app": "from celery import Celery\napp = Celery('x')\n@app.task\ndef f(): ...\n",
    "celery_imported_app": "from .celery import app\n@app.task\ndef f(): ...\n",
    "celery_shared_task": "from celery import shared_task\n@shared_task\ndef f(): ...\n",
    "invoke_task": "from invoke import task\n@task\ndef f(c): ...\n",
    "invoke_module": "import invoke\n@invoke.task\ndef f(c): ...\n",
    "local_def": "def task(fn):\n    return fn\n@task\ndef f(): ...\n",
    "shadowed_after_import": "from nuvom import task\ndef task(fn):\n    return fn\n@task\ndef f(): ...\n",
    "relative_task": "from .helpers import task\n@task\ndef f(): ...\n",
    "foreign_nuvom_name": "from myproject import nuvom\n@nuvom.task\ndef f(): ...\n",
    "other_nuvom_function": "from nuvom import schedule\n@schedule\ndef f(): ...\n",
    "not_a_decorator_use": "from nuvom import task\ndef f():\n    return task\n",
}


def scan(root: Path) -> tuple[list, list]:
    report = AstDiscoverer().discover(str(root))
    return report.tasks, report.problems


@pytest.mark.parametrize("source", POSITIVE.values(), ids=list(POSITIVE))
@pytest.mark.parametrize("is_async", [False, True], ids=["def", "async_def"])
def test_discovery_recognises_nuvom_task(write_tree, source: str, is_async: bool) -> None:
    if is_async:
        source = source.replace("def f(", "async def f(")
    root = write_tree({"jobs.py": source})
    tasks, problems = scan(root)
    assert [(t.name, t.module, t.qualname, t.path, t.is_async) for t in tasks] == [
        ("f", "jobs", "f", "jobs.py", is_async)
    ]
    assert tasks[0].line == source.splitlines().index(next(
        line for line in source.splitlines() if line.lstrip().startswith(("def f", "async def f"))
    )) + 1
    assert problems == []


@pytest.mark.parametrize("source", NEGATIVE.values(), ids=list(NEGATIVE))
def test_discovery_ignores_foreign_decorator(write_tree, source: str) -> None:
    root = write_tree({"jobs.py": source})
    tasks, problems = scan(root)
    assert tasks == []
    assert problems == []


def test_discovery_reads_literal_options(write_tree) -> None:
    root = write_tree({"jobs.py": """
        from nuvom import task

        @task(
            name="emails.send", retries=3, retry_delay_secs=1.5, backoff="exponential",
            timeout_secs=30, timeout_policy="retry", store_result=False, priority=5,
            queue="mail", tags=("a", "b"), description="Send it", category="io",
            unique=True, executor="process", before_job=log_start,
        )
        def send(to): ...
    """})
    tasks, problems = scan(root)
    assert problems == []
    (t,) = tasks
    assert t.name == "emails.send"
    assert t.qualname == "send"
    assert t.options == {
        "retries": 3, "retry_delay_secs": 1.5, "backoff": "exponential", "timeout_secs": 30,
        "timeout_policy": "retry", "store_result": False, "priority": 5, "queue": "mail",
        "tags": ["a", "b"], "description": "Send it", "category": "io", "unique": True,
        "executor": "process",
    }


def test_discovery_reports_non_literal_argument_and_keeps_task(write_tree) -> None:
    root = write_tree({"jobs.py": """
        from nuvom import task
        LIMIT = 3

        @task(retries=LIMIT, queue="q")
        def f(): ...
    """})
    tasks, problems = scan(root)
    assert [(t.name, t.options) for t in tasks] == [("f", {"queue": "q"})]
    assert [(p["kind"], p["argument"], p["path"], p["line"]) for p in problems] == [
        ("non_literal_argument", "retries", "jobs.py", 5)
    ]
    assert "LIMIT" in problems[0]["message"]


def test_discovery_non_literal_name_falls_back_to_function_name(write_tree) -> None:
    root = write_tree({"jobs.py": """
        from nuvom import task
        PREFIX = "x"

        @task(name=PREFIX + ".f")
        def f(): ...
    """})
    tasks, problems = scan(root)
    assert [t.name for t in tasks] == ["f"]
    assert [(p["kind"], p["argument"]) for p in problems] == [("non_literal_argument", "name")]
    assert "listed as 'f'" in problems[0]["message"]


def test_discovery_reports_invalid_name_and_positional_argument(write_tree) -> None:
    root = write_tree({"jobs.py": """
        from nuvom import task

        @task(42)
        def f(): ...

        @task(name=7)
        def g(): ...
    """})
    tasks, problems = scan(root)
    assert [t.name for t in tasks] == ["f", "g"]
    assert [(p["kind"], p["line"]) for p in problems] == [("positional_argument", 4), ("invalid_argument", 7)]


def test_discovery_reports_nested_tasks_and_does_not_list_them(write_tree) -> None:
    root = write_tree({"jobs.py": """
        from nuvom import task

        def factory():
            @task
            def inner(): ...
            return inner

        class Jobs:
            @task(name="method")
            def run(self): ...

        @task
        def top(): ...
    """})
    tasks, problems = scan(root)
    assert [t.name for t in tasks] == ["top"]
    assert [(p["kind"], p["line"], p["qualname"]) for p in problems] == [
        ("nested_task", 6, "factory.<locals>.inner"),
        ("nested_task", 11, "Jobs.run"),
    ]


def test_discovery_reports_duplicate_names_with_both_locations(write_tree) -> None:
    root = write_tree({
        "a.py": "from nuvom import task\n@task\ndef send(): ...\n",
        "b.py": "from nuvom import task\n\n@task(name='send')\ndef other(): ...\n",
    })
    tasks, problems = scan(root)
    assert [(t.name, t.path) for t in tasks] == [("send", "a.py")]
    (p,) = problems
    assert (p["kind"], p["path"], p["line"]) == ("duplicate_name", "b.py", 4)
    assert p["locations"] == ["a.py:3", "b.py:4"]
    assert "a.py:3" in p["message"] and "b.py:4" in p["message"]


def test_discovery_skips_syntax_and_decode_errors(write_tree) -> None:
    root = write_tree({
        "broken.py": "from nuvom import task\n@task\ndef f(:\n",
        "binary.py": b"\xff\xfe\x00\x01 not python",
        "latin.py": b"from nuvom import task\n# caf\xe9\n@task\ndef g(): ...\n",
        "ok.py": "from nuvom import task\n@task\ndef h(): ...\n",
    })
    tasks, problems = scan(root)
    assert [t.name for t in tasks] == ["h"]
    kinds = {(p["path"], p["kind"]) for p in problems}
    assert kinds == {("broken.py", "syntax_error"), ("binary.py", "decode_error"), ("latin.py", "decode_error")}
    assert next(p for p in problems if p["kind"] == "syntax_error")["line"] == 3


def test_discovery_honours_coding_declaration(write_tree) -> None:
    root = write_tree({"latin.py": b"# -*- coding: latin-1 -*-\nfrom nuvom import task\n# caf\xe9\n@task\ndef g(): ...\n"})
    tasks, problems = scan(root)
    assert [t.name for t in tasks] == ["g"] and problems == []


def test_discovery_reports_unresolved_task_decorator(write_tree) -> None:
    root = write_tree({"jobs.py": "from helpers import *\n\n@task\ndef f(): ...\n"})
    tasks, problems = scan(root)
    assert tasks == []
    assert [(p["kind"], p["line"]) for p in problems] == [("unresolved_decorator", 3)]
    assert "from helpers import *" in problems[0]["message"]


def test_parse_source_never_raises_on_null_bytes() -> None:
    result = parse_source(b"x = 1\x00\n", "z.py")
    assert result.tasks == []
    assert [p["kind"] for p in result.problems] == ["syntax_error"]
