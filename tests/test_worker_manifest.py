"""Workers load tasks from the discovery manifest; --dev reloads them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from nuvom_cli.devreload import DevReloader
from support import make_app, nuvom_cmd, running_worker, subprocess_env

from nuvom_kernel.app import Nuvom, use_app
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.task import registry
from nuvom_support.loader import load_from_manifest


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_worker_runs_a_task_found_only_through_the_manifest(tmp_path: Path) -> None:
    write(tmp_path / "shop" / "__init__.py", "")
    write(tmp_path / "shop" / "jobs.py", """
        from nuvom import task

        @task(name="shop.total")
        def total(prices):
            return sum(prices)
    """)
    write(tmp_path / "shop" / "broken.py", """
        from nuvom import task
        raise RuntimeError("broken on import")

        @task(name="shop.broken")
        def broken():
            pass
    """)
    app = Nuvom(root=tmp_path, environ={})
    ok = app.enqueue(Job(task="shop.total", args=[[1, 2, 3]]))
    orphan = app.enqueue(Job(task="shop.broken"))
    stranger = app.enqueue(Job(task="shop.not_a_task"))
    app.close()
    out = subprocess.run(nuvom_cmd() + ["runworker", "--burst"], capture_output=True, text=True, cwd=tmp_path,
                         env=subprocess_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".nuvom" / "manifest.json").is_file()
    assert out.stderr.count("broken on import") >= 1 and "could not import task module shop.broken" in out.stderr
    after = Nuvom(root=tmp_path, environ={})
    assert after.get_job(ok.id).result == 6
    for job_id in (orphan.id, stranger.id):
        dead = after.get_job(job_id)
        assert dead.state == JobState.DEAD and "unknown task" in (dead.reason or "")


def test_load_from_manifest_in_process(tmp_path: Path) -> None:
    mod = f"pkg_{uuid.uuid4().hex[:8]}"
    write(tmp_path / mod / "__init__.py", "")
    write(tmp_path / mod / "t.py", f"""
        from nuvom import task

        @task(name="{mod}.hello")
        async def hello(name):
            return "hello " + name
    """)
    app = make_app("memory", tmp_path)
    loaded = load_from_manifest(app)
    assert loaded.refreshed and loaded.tasks == [f"{mod}.hello"] and not loaded.problems
    assert registry.find(f"{mod}.hello") is not None
    sys.path.remove(str(tmp_path)) if str(tmp_path) in sys.path else None


def test_dev_reload_picks_up_changed_code(tmp_path: Path) -> None:
    mod = f"devtasks_{uuid.uuid4().hex[:8]}"
    source = tmp_path / f"{mod}.py"
    write(source, f"""
        from nuvom import task

        @task(name="{mod}.version")
        def version():
            return 1
    """)
    app = make_app("memory", tmp_path)
    load_from_manifest(app)
    reloader = DevReloader(app, interval=60)
    from nuvom_kernel.task import get_task

    with use_app(app), running_worker(app):
        assert get_task(f"{mod}.version").delay().result(timeout=30) == 1
        write(source, f"""
            from nuvom import task

            @task(name="{mod}.version")
            def version():
                return 2

            @task(name="{mod}.added")
            def added():
                return "new"
        """)
        st = source.stat()
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        assert mod in reloader.check_once()
        assert reloader.generation == 1
        assert get_task(f"{mod}.version").delay().result(timeout=30) == 2
        assert get_task(f"{mod}.added").delay().result(timeout=30) == "new"
    assert reloader.check_once() == []  # nothing changed since
