"""``DiscovererContract``: what every task discoverer does.

Subclass it in a plugin's tests (class name starting with ``Test``) and
provide a ``discoverer`` fixture returning the component under test::

    import pytest
    from nuvom_kernel.testing import DiscovererContract

    class TestMyDiscoverer(DiscovererContract):
        @pytest.fixture
        def discoverer(self):
            return MyDiscoverer()

It only uses the :class:`~nuvom_kernel.contracts.Discoverer` protocol: a
project tree with a nested package, a ``@task`` with options, an async task
with a custom name, a foreign decorator that must be ignored, a file with a
syntax error and a ``.venv`` that must be skipped; and the per-file cache
(a warm scan parses nothing, a changed file is parsed again).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nuvom_kernel.contracts import Discoverer, DiscoveryReport

_OLD_NS = 1_500_000_000 * 1_000_000_000


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        os.utime(path, ns=(_OLD_NS, _OLD_NS))
    return root


class DiscovererContract:
    """Subclass it (name starting with ``Test``) and define a ``discoverer``
    fixture returning the component under test."""

    @pytest.fixture
    def project(self, tmp_path: Path) -> Path:
        return _write(tmp_path, {
            "a/__init__.py": "",
            "a/b/__init__.py": "",
            "a/b/c.py": """
                from nuvom import task

                @task(retries=2)
                def first(): ...

                @task(name="custom.second")
                async def second(): ...
            """,
            "a/foreign.py": """
                from celery import Celery
                app = Celery()

                @app.task
                def not_nuvom(): ...
            """,
            "a/broken.py": "def oops(:\n",
            ".venv/lib/site.py": "from nuvom import task\n@task\ndef hidden(): ...\n",
        })

    def _scan(self, discoverer: Discoverer, root: Path, **kwargs: Any) -> DiscoveryReport:
        report = discoverer.discover(str(root), **kwargs)
        assert isinstance(report, DiscoveryReport)
        return report

    def test_contract_is_a_discoverer(self, discoverer: Discoverer) -> None:
        assert isinstance(discoverer, Discoverer)

    def test_contract_finds_tasks_with_location_and_options(self, discoverer: Discoverer, project: Path) -> None:
        report = self._scan(discoverer, project)
        found = {t.name: t for t in report.tasks}
        assert sorted(found) == ["custom.second", "first"]
        first = found["first"]
        assert (first.module, first.qualname, first.path, first.line, first.is_async) == ("a.b.c", "first", "a/b/c.py", 5, False)
        assert first.options.get("retries") == 2
        assert found["custom.second"].is_async and found["custom.second"].qualname == "second"

    def test_contract_reports_bad_files_without_raising(self, discoverer: Discoverer, project: Path) -> None:
        report = self._scan(discoverer, project)
        assert any(p["kind"] == "syntax_error" and p["path"] == "a/broken.py" for p in report.problems)
        for p in report.problems:
            assert {"path", "line", "kind", "message"} <= set(p)

    def test_contract_cache_entries_keyed_by_relative_posix_path(self, discoverer: Discoverer, project: Path) -> None:
        report = self._scan(discoverer, project)
        assert "a/b/c.py" in report.files and "a/broken.py" in report.files
        assert all("\\" not in key and not key.startswith("/") for key in report.files)
        assert not any(key.startswith(".venv/") for key in report.files)
        assert report.files_scanned == len(report.files)

    def test_contract_warm_scan_parses_nothing_and_finds_the_same(self, discoverer: Discoverer, project: Path) -> None:
        cold = self._scan(discoverer, project)
        warm = self._scan(discoverer, project, cache=cold.files)
        assert warm.files_parsed == 0
        assert warm.tasks == cold.tasks
        assert sorted(p["kind"] for p in warm.problems) == sorted(p["kind"] for p in cold.problems)

    def test_contract_changed_file_is_parsed_again(self, discoverer: Discoverer, project: Path) -> None:
        cold = self._scan(discoverer, project)
        _write(project, {"a/b/c.py": "from nuvom import task\n@task\ndef only(): ...\n"})
        os.utime(project / "a" / "b" / "c.py", ns=(_OLD_NS + 10**9, _OLD_NS + 10**9))
        warm = self._scan(discoverer, project, cache=cold.files)
        assert warm.files_parsed == 1
        assert [t.name for t in warm.tasks] == ["only"]

    def test_contract_exclude_and_include(self, discoverer: Discoverer, project: Path) -> None:
        assert self._scan(discoverer, project, exclude=["a/b/"]).tasks == []
        assert len(self._scan(discoverer, project, include=["a/b/*.py"]).tasks) == 2
