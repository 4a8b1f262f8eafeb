"""What a command or a worker imports: every installed plugin loads, but only its
entry module; a backend's client library, the web stack and the CLI's command
modules load when something uses them.  ``nuvom --help`` and a worker's start
pay for what they run, not for everything installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r'''
import io, json, runpy, sys
mode, root = sys.argv[1], sys.argv[2]
if mode == "help":
    sys.argv = ["nuvom", "--help"]
    sys.stdout = io.StringIO()
    try:
        runpy.run_module("nuvom_cli", run_name="__main__")
    except SystemExit:
        pass
    sys.stdout = sys.__stdout__
else:
    from pathlib import Path
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.models import Job
    from nuvom_kernel.worker import Worker
    app = Nuvom(root=Path(root), environ={}, queue_backend=mode, result_backend=mode, log_level="WARNING")
    app.enqueue(Job(task="not.registered"))
    Worker(app, concurrency=2, burst=True).run()
    app.close()
print(json.dumps(sorted(sys.modules)))
'''

#: loaded only by what uses them
NEVER_FOR_HELP = {
    "redis", "psycopg", "psycopg_pool", "starlette", "uvicorn", "msgpack",
    "nuvom_backend_memory.backend", "nuvom_backend_sqlite.backend", "nuvom_backend_file.backend",
    "nuvom_backend_redis.backend", "nuvom_backend_postgres.backend", "nuvom_dashboard.web",
    "nuvom_executor_process.executor", "nuvom_executor_thread.executor", "nuvom_discovery_ast.discoverer",
}
NEVER_IN_A_WORKER = {
    "redis", "psycopg", "psycopg_pool", "starlette", "uvicorn", "msgpack", "typer", "rich", "nuvom_cli.app",
    "nuvom_cli.commands", "nuvom_dashboard.web", "nuvom_executor_process.executor",
}


def modules_after(mode: str, root: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode, str(root)], capture_output=True, text=True,
                         timeout=120, cwd=root, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_help_loads_every_plugin_but_no_implementation(tmp_path: Path) -> None:
    loaded = modules_after("help", tmp_path)
    assert {"nuvom_backend_redis.plugin", "nuvom_backend_postgres.plugin", "nuvom_dashboard.plugin"} <= loaded
    assert sorted(loaded & NEVER_FOR_HELP) == []


@pytest.mark.parametrize(("backend", "others"), [("sqlite", ("file", "redis", "postgres", "memory")),
                                                  ("file", ("sqlite", "redis", "postgres", "memory"))])
def test_a_worker_loads_its_own_backend_only(tmp_path: Path, backend: str, others: tuple[str, ...]) -> None:
    loaded = modules_after(backend, tmp_path)
    assert f"nuvom_backend_{backend}.backend" in loaded and "nuvom_executor_thread.executor" in loaded
    assert sorted(loaded & (NEVER_IN_A_WORKER | {f"nuvom_backend_{o}.backend" for o in others})) == []


def test_the_packages_still_export_their_names() -> None:
    import nuvom_backend_redis
    import nuvom_backend_sqlite
    from nuvom_backend_redis import RedisBackend
    from nuvom_backend_sqlite import DatabaseBusyError, SqliteBackend

    assert RedisBackend.__module__ == "nuvom_backend_redis.backend"
    assert SqliteBackend.__name__ == "SqliteBackend" and issubclass(DatabaseBusyError, Exception)
    assert nuvom_backend_sqlite.SqliteBackend is SqliteBackend
    with pytest.raises(AttributeError, match="nuvom_backend_redis.*RedisBakend"):
        _ = nuvom_backend_redis.RedisBakend  # type: ignore[attr-defined]
