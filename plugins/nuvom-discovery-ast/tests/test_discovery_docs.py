"""docs/discovery.md stays true: its examples are run, its lists match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nuvom_discovery_ast import AstDiscoverer
from nuvom_discovery_ast.parser import PROBLEM_KINDS
from nuvom_discovery_ast.walker import DEFAULT_EXCLUDES

DOC = Path(__file__).resolve().parents[3] / "docs" / "discovery.md"
TASK = "from nuvom import task\n@task\ndef {name}(): ...\n"


@pytest.fixture(scope="module")
def doc() -> str:
    if not DOC.is_file():
        pytest.skip("docs/discovery.md is not in this checkout")
    return DOC.read_text(encoding="utf-8")


def section(doc: str, title: str) -> str:
    start = doc.index(title)
    end = doc.find("\n## ", start + 1)
    return doc[start:end if end != -1 else None]


def test_discovery_doc_recognised_forms_are_found(doc: str, write_tree) -> None:
    text = section(doc, "## What is recognised")
    text = text[: text.index("### What is not recognised")]
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    root = write_tree({f"form{i}.py": block for i, block in enumerate(blocks)})
    report = AstDiscoverer().discover(str(root))
    assert sorted(t.name for t in report.tasks) == ["a", "b", "c", "e", "f", "g", "reports.build"]
    assert report.problems == []


def test_discovery_doc_nuvomignore_example(doc: str, write_tree) -> None:
    (ignore,) = re.findall(r"```gitignore\n(.*?)```", doc, re.S)
    root = write_tree({
        ".nuvomignore": ignore,
        "generated/x.py": TASK.format(name="generated"),
        "api/msg_pb2.py": TASK.format(name="pb2"),
        "scripts/one_off.py": TASK.format(name="anchored"),
        "app/scripts/one_off.py": TASK.format(name="not_anchored"),
        "app/jobs_old.py": TASK.format(name="old"),
        "app/keep_old.py": TASK.format(name="kept_old"),
        "app/jobs.py": TASK.format(name="jobs"),
    })
    assert sorted(t.name for t in AstDiscoverer().discover(str(root)).tasks) == ["jobs", "kept_old", "not_anchored"]


def test_discovery_doc_lists_default_excludes(doc: str) -> None:
    text = section(doc, "## Choosing the files")
    paragraph = text[text.index("never entered") : text.index("A `.nuvomignore`")]
    assert set(re.findall(r"`([^`*]+)`", paragraph)) == set(DEFAULT_EXCLUDES)


def test_discovery_doc_lists_problem_kinds(doc: str) -> None:
    table = section(doc, "## Problems")
    assert re.findall(r"^\| `([a-z_]+)`", table, re.M) == list(PROBLEM_KINDS)
