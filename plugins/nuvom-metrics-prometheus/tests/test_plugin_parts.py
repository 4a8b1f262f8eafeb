"""Settings, the HTTP server, the commands and a store that cannot be read."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from nuvom_metrics_prometheus import MetricsServer, PrometheusOptions, Recorder, make_registry
from nuvom_metrics_prometheus.plugin import metrics_dir, options_of
from prometheus_client.exposition import generate_latest
from pydantic import ValidationError

from nuvom_kernel.app import Nuvom


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_PROJECT_ROOT=str(root), PYTHONUNBUFFERED="1", **extra)
    return env


def test_the_011_port_name_is_the_plugins_port_and_warns_no_more(tmp_path: Path) -> None:
    app = Nuvom(root=tmp_path, environ={"NUVOM_PROMETHEUS_PORT": "9150"})
    assert options_of(app).port == 9150
    assert not [w for w in app.loaded.warnings if "PROMETHEUS" in w], app.loaded.warnings
    app = Nuvom(root=tmp_path, environ={"NUVOM_PROMETHEUS_PORT": "9150", "NUVOM_PROMETHEUS__PORT": "9200"})
    assert options_of(app).port == 9200  # the canonical name wins
    assert options_of(Nuvom(root=tmp_path, environ={})).port is None  # workers serve nothing unless asked


def test_beyond_loopback_only_with_a_token() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert PrometheusOptions(host=host).host == host  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match=r"'0\.0\.0\.0' is not a loopback address.*NUVOM_PROMETHEUS__TOKEN"):
        PrometheusOptions(host="0.0.0.0")  # type: ignore[call-arg]
    assert PrometheusOptions(host="0.0.0.0", token="s3cret").token is not None  # type: ignore[call-arg,arg-type]
    with pytest.raises(ValueError, match="need a token"):
        MetricsServer(make_registry_stub(), host="0.0.0.0", port=0)


def make_registry_stub() -> Any:
    from prometheus_client.registry import CollectorRegistry

    return CollectorRegistry(auto_describe=False)


def test_the_server_wants_the_bearer_token_and_serves_only_metrics(tmp_path: Path) -> None:
    app = Nuvom(root=tmp_path, environ={"NUVOM_QUEUE_BACKEND": "memory", "NUVOM_RESULT_BACKEND": "memory"})
    server = MetricsServer(make_registry(app, metrics_dir(tmp_path)), port=0, token="s3cret").start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        assert get(server.url)[0] == 401
        assert get(server.url, "wrong")[0] == 401
        status, body = get(server.url, "s3cret")
        assert status == 200 and "nuvom_store_up 1.0" in body
        assert get(server.url.replace("/metrics", "/admin"), "s3cret")[0] == 404
    finally:
        server.stop()
        app.close()


def test_a_store_that_cannot_be_read_still_gives_the_counters(tmp_path: Path) -> None:
    recorder = Recorder(metrics_dir(tmp_path))
    recorder.inc("nuvom_jobs_enqueued", {"task": "t", "queue": "q"}, 2)
    recorder.close()

    class Broken:
        root = tmp_path

        @property
        def jobs(self) -> Any:
            raise OSError("disk on fire")

    text = generate_latest(make_registry(Broken(), metrics_dir(tmp_path))).decode()  # type: ignore[arg-type]
    assert 'nuvom_jobs_enqueued_total{queue="q",task="t"} 2.0' in text
    assert "nuvom_store_up 0.0" in text and "nuvom_workers_up" not in text


def test_a_process_continues_the_file_a_dead_process_with_its_id_left(tmp_path: Path) -> None:
    for _ in range(2):  # the same host and pid: the second recorder adds to the first's values
        recorder = Recorder(metrics_dir(tmp_path))
        recorder.inc("nuvom_jobs_started", {"task": "t", "queue": "q"})
        recorder.observe("nuvom_job_run_seconds", {"task": "t", "queue": "q"}, 0.3)
        recorder.close()
    text = generate_latest(make_registry_for_files(tmp_path)).decode()
    assert 'nuvom_jobs_started_total{queue="q",task="t"} 2.0' in text
    assert 'nuvom_job_run_seconds_bucket{le="0.25",queue="q",task="t"} 0.0' in text
    assert 'nuvom_job_run_seconds_bucket{le="0.5",queue="q",task="t"} 2.0' in text
    assert 'nuvom_job_run_seconds_count{queue="q",task="t"} 2.0' in text
    if os.name == "posix":
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in metrics_dir(tmp_path).iterdir())
        assert metrics_dir(tmp_path).stat().st_mode & 0o777 == 0o700


def make_registry_for_files(root: Path) -> Any:
    from nuvom_metrics_prometheus.recorder import read_families
    from prometheus_client.registry import CollectorRegistry

    class Files:
        def collect(self) -> Any:
            return read_families(metrics_dir(root))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Files())  # type: ignore[arg-type]
    return registry


def test_metrics_show_and_serve_commands(tmp_path: Path) -> None:
    show = subprocess.run([sys.executable, "-m", "nuvom_cli", "metrics", "show"], cwd=tmp_path, env=env_for(tmp_path),
                          text=True, capture_output=True, timeout=60)
    assert show.returncode == 0, show.stderr
    assert "nuvom_store_up 1.0" in show.stdout and "# TYPE nuvom_jobs gauge" in show.stdout
    serve = subprocess.Popen([sys.executable, "-m", "nuvom_cli", "metrics", "serve", "--port", "0"], cwd=tmp_path,
                             env=env_for(tmp_path), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert "metrics at http://127.0.0.1:" in line, line
        status, body = get(line.split("metrics at ", 1)[1].strip())
        assert status == 200 and "nuvom_workers_up 0.0" in body
    finally:
        serve.kill()
        serve.wait()
    refused = subprocess.run([sys.executable, "-m", "nuvom_cli", "metrics", "serve", "--host", "0.0.0.0"],
                             cwd=tmp_path, env=env_for(tmp_path), text=True, capture_output=True, timeout=60)
    assert refused.returncode == 2 and "need a token" in refused.stderr, refused.stderr


def test_metrics_port_without_the_plugin_says_what_to_install(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "nuvom_cli", "runworker", "--burst", "--metrics-port", "9150"],
                          cwd=tmp_path, env=env_for(tmp_path, NUVOM_DISABLE_PLUGINS="nuvom-metrics-prometheus"),
                          text=True, capture_output=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'nuvom[prometheus]'" in proc.stderr, proc.stderr


def test_an_expired_lease_is_counted_once_by_the_worker_that_swept_it(tmp_path: Path) -> None:
    from nuvom_kernel.models import Job
    from nuvom_kernel.worker import Worker

    app = Nuvom(root=tmp_path, environ={"NUVOM_QUEUE_BACKEND": "memory", "NUVOM_RESULT_BACKEND": "memory"},
                sweep_interval_secs=0.1)
    orphan = app.enqueue(Job(task="no.such.task"))
    app.queue.claim(["default"], 1, 1.0, "gone-worker")  # its worker "died": the lease expires in 1 s
    worker = Worker(app, concurrency=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:  # the lease expires, the sweeper requeues the job, the worker dead-letters the unknown task
        deadline = time.monotonic() + 30
        while app.jobs.get(orphan.id).state.value != "dead":  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the orphaned job was never swept and run"
            time.sleep(0.02)
    finally:
        worker.request_stop()
        thread.join(30)
    text = generate_latest(make_registry(app, metrics_dir(tmp_path))).decode()
    assert "nuvom_lease_expiries_total 1.0" in text
    assert 'nuvom_jobs_finished_total{outcome="dead",queue="default",task="no.such.task"} 1.0' in text
    app.close()


def test_plugin_test_passes_and_plugin_status_lists_it(tmp_path: Path) -> None:
    import json

    report = subprocess.run([sys.executable, "-m", "nuvom_cli", "plugin", "test", "nuvom-metrics-prometheus",
                             "--json"], cwd=tmp_path, env=env_for(tmp_path), text=True, capture_output=True,
                            timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr
    result = json.loads(report.stdout)
    assert result["ok"] is True
    checks = {row["check"]: row for row in result["plugins"][0]["checks"]}
    assert all(row["ok"] for row in checks.values()) and {"load", "hooks", "settings", "commands",
                                                           "lifecycle"} <= set(checks), checks
    status = subprocess.run([sys.executable, "-m", "nuvom_cli", "plugin", "status", "--json"], cwd=tmp_path,
                            env=env_for(tmp_path), text=True, capture_output=True, timeout=60)
    plugin = {r["name"]: r for r in json.loads(status.stdout)}["nuvom-metrics-prometheus"]
    assert plugin["loaded"] and plugin["error"] is None and plugin["version"] == "1.0.0"
    assert "nuvom_leases_expired" in plugin["hooks"] and "nuvom_job_finished" in plugin["hooks"]
