"""``nuvom plugin test nuvom-backend-redis``: the plugin loads alone, declares its
settings, and passes both contract suites through its registered factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def test_nuvom_plugin_test_passes(redis_server: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    proc = subprocess.run(
        [sys.executable, "-m", "nuvom_cli", "plugin", "test", "nuvom-backend-redis", "--json",
         "-o", f"url={redis_server.url}", "-o", "namespace=plugin-test-{project}"],
        capture_output=True, text=True, env=env, timeout=600)
    report = json.loads(proc.stdout)
    assert report["ok"] and proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    [plugin] = report["plugins"]
    assert plugin["provides"] == {"queue_backends": ["redis"], "result_backends": ["redis"]}
    passed = [c for c in plugin["checks"] if c["ok"] and c["check"].startswith("contract:")]
    assert len(passed) == 2, plugin["checks"]
