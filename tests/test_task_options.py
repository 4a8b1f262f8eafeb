"""Plugins extend task options: @task(rate_limit=...) reaches hooks on the task and the job."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import make_app, running_worker

from nuvom_kernel.app import use_app
from nuvom_kernel.task import task

RATE_LIMIT_PLUGIN = """
import nuvom

seen = []


@nuvom.hookimpl
def nuvom_register_task_options(register):
    register("rate_limit", str, description="most runs per period, e.g. '10/s'")
    register("budget", int)


@nuvom.hookimpl(wrapper=True)
def nuvom_execute_job(job, task):
    seen.append((task.name, task.plugin_options.get("rate_limit"), job.options.get("rate_limit")))
    return (yield)
"""


def _app(tmp_path: Path) -> Any:
    (tmp_path / "rate_plugin.py").write_text(textwrap.dedent(RATE_LIMIT_PLUGIN), encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./rate_plugin.py"]\n', encoding="utf-8")
    return make_app("memory", tmp_path)


def _plugin_module(tmp_path: Path) -> Any:
    path = str((tmp_path / "rate_plugin.py").resolve())
    return next(m for name, m in list(sys.modules.items())
                if name.startswith("nuvom_local_plugin_") and getattr(m, "__file__", None) == path)


def test_a_plugin_option_reaches_the_task_the_job_and_the_hooks(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with use_app(app):
        @task(name="opts.limited", rate_limit="10/s")
        def limited(x: int) -> int:
            return x * 2

        assert limited.plugin_options == {"rate_limit": "10/s"}
        with running_worker(app, concurrency=1):
            first = limited.delay(1)
            assert first.result(timeout=30) == 2
            second = limited.options(rate_limit="1/s", budget="3").delay(2)
            assert second.result(timeout=30) == 4
        assert app.get_job(first.id).options == {"rate_limit": "10/s"}
        assert app.get_job(second.id).options == {"rate_limit": "1/s", "budget": 3}
    assert _plugin_module(tmp_path).seen == [("opts.limited", "10/s", "10/s"), ("opts.limited", "10/s", "1/s")]
    app.close()


def test_unknown_options_still_fail_with_a_suggestion(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with use_app(app):
        with pytest.raises(TypeError, match=r"rate_limt \(did you mean rate_limit\?\)"):
            task(name="opts.typo", rate_limt="10/s")(lambda: None)
        with pytest.raises(TypeError, match=r"retrys \(did you mean retries\?\)"):
            task(name="opts.typo2", retrys=3)(lambda: None)
        with pytest.raises(ValueError, match=r"@task option budget='lots' is invalid: expected int .*rate_plugin"):
            task(name="opts.bad", budget="lots")(lambda: None)

        @task(name="opts.plain")
        def plain() -> None:
            return None

        with pytest.raises(TypeError, match=r"unknown .options\(\) option\(s\): countdwn \(did you mean countdown\?\)"):
            plain.options(countdwn=3).delay()
    app.close()


def test_without_the_plugin_the_option_is_unknown(tmp_path: Path) -> None:
    app = make_app("memory", tmp_path)
    with use_app(app), pytest.raises(TypeError, match="unknown @task option"):
        task(name="opts.orphan", rate_limit="10/s")(lambda: None)
    app.close()
