"""`nuvom dashboard` as users run it: the command comes from this plugin, binds
loopback unless told otherwise with a token (S7), and serves with uvicorn."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

TOKEN = "cli-test-token-0123456789abcdef"


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_PROJECT_ROOT=str(root), PYTHONUNBUFFERED="1", **extra)
    return env


def nuvom(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nuvom_cli", *args], capture_output=True, text=True, cwd=root,
                          env=env_for(root, **extra), timeout=120)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_another_address_needs_a_token(tmp_path: Path) -> None:
    out = nuvom(tmp_path, "dashboard", "--host", "0.0.0.0")
    assert out.returncode == 2
    assert "serving the dashboard on 0.0.0.0 (not loopback) needs a token: set NUVOM_DASHBOARD__TOKEN" in flat(out.stderr)


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    out = nuvom(tmp_path, "dashboard", "--host", "0.0.0.0", NUVOM_DASHBOARD__TOKEN="abc")
    assert out.returncode == 2 and "token is 3 characters long; use at least 16" in flat(out.stderr)
    assert "abc" not in out.stderr.replace("token is 3", "")  # the secret itself is never echoed


def test_a_bad_setting_names_the_key(tmp_path: Path) -> None:
    out = nuvom(tmp_path, "dashboard", NUVOM_DASHBOARD__PORT="99999")
    assert out.returncode == 2 and "NUVOM_DASHBOARD__PORT" in flat(out.stderr)


def test_plugin_status_and_plugin_test(tmp_path: Path) -> None:
    status = {p["name"]: p for p in json.loads(nuvom(tmp_path, "plugin", "status", "--json").stdout)}
    mine = status["nuvom-dashboard"]
    assert mine["loaded"] and mine["error"] is None
    assert set(mine["hooks"]) == {"nuvom_register_commands", "nuvom_register_settings"}
    report = json.loads(nuvom(tmp_path, "plugin", "test", "nuvom-dashboard", "--json").stdout)
    assert report["ok"], report
    checks = {c["check"]: c for p in report["plugins"] for c in p["checks"]}
    assert "dashboard" in checks["commands"]["detail"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str, method: str = "GET", **headers: str) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, method=method, headers=headers)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def test_serves_with_uvicorn_on_loopback_read_only_with_a_token(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nuvom_cli", "dashboard", "--port", str(port), "--read-only"],
                            cwd=tmp_path, env=env_for(tmp_path, NUVOM_DASHBOARD__TOKEN=TOKEN),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, headers = fetch(base + "/")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the dashboard did not answer: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.1)
        assert status == 303 and headers["location"] == "/login?next=%2F"  # the token guards it
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, html, headers = fetch(base + "/", **auth)
        assert status == 200 and "read-only" in html and "server" not in {k.lower() for k in headers}
        assert fetch(base + "/jobs", **auth)[0] == 200
        assert fetch(base + "/actions/purge", "POST", **auth)[0] in (404, 405)  # no action route at all
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"Nuvom dashboard (read-only) on http://127.0.0.1:{port}, token required" in flat(out)
    assert TOKEN not in out
