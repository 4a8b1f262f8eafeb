"""JsonFormatter, the options, and what a host application sees when it attaches the formatter itself."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nuvom_logs_json import FIELDS, JsonFormatter, JsonLogsOptions, make_handler
from nuvom_logs_json.plugin import writes_json
from support import make_app, running_worker

from nuvom import sdk
from nuvom_kernel.app import Nuvom, use_app
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.models import Job


def record(msg: str = "hello %s", level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("nuvom.test", level, __file__, 1, msg, ("world",) if "%s" in msg else (), None)
    rec.__dict__.update(extra)
    return rec


def test_fixed_fields_extras_and_static_fields() -> None:
    line = JsonFormatter({"service": "billing"}).format(
        record(event="job.started", job_id="j1", task="t", attempt=2, queue="q", custom=[1, 2]))
    assert "\n" not in line
    obj = json.loads(line)
    assert list(obj)[:5] == ["timestamp", "level", "event", "message", "logger"]
    assert obj["timestamp"].endswith("Z") and "T" in obj["timestamp"]
    assert (obj["level"], obj["event"], obj["message"], obj["logger"]) == ("info", "job.started", "hello world", "nuvom.test")
    assert (obj["job_id"], obj["task"], obj["attempt"], obj["queue"]) == ("j1", "t", 2, "q")
    assert obj["custom"] == [1, 2] and obj["service"] == "billing"
    assert json.loads(JsonFormatter().format(record()))["event"] == "log"


def test_an_exception_is_fields_on_one_line() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        import sys

        rec = record("failed", level=logging.ERROR)
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert line.count("\n") == 0
    obj = json.loads(line)
    assert (obj["error_type"], obj["error_message"]) == ("KeyError", "'missing'")
    assert obj["traceback"].startswith("Traceback") and 'raise KeyError("missing")' in obj["traceback"]


def test_static_fields_may_not_hide_nuvom_fields() -> None:
    with pytest.raises(ValueError, match="job_id"):
        JsonFormatter({"job_id": "x"})
    assert "error_message" in FIELDS


def test_options_from_strings() -> None:
    opts = JsonLogsOptions.model_validate({"enabled": "1", "level": "warning", "fields": '{"service": "a", "n": 3}'})
    assert opts.enabled and opts.level == "WARNING" and opts.fields == {"service": "a", "n": 3}
    assert JsonLogsOptions.model_validate({"fields": "service=a, region = eu"}).fields == {"service": "a", "region": "eu"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        JsonLogsOptions.model_validate({"fields": "service"})
    with pytest.raises(ValueError, match="unknown|Extra"):
        JsonLogsOptions.model_validate({"enabeld": True})


def test_settings_come_from_the_same_sources_as_every_setting(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nuvom.logs_json]\nenabled = true\nstream = "stdout"\n'
                                             '[tool.nuvom.logs_json.fields]\nservice = "billing"\n', encoding="utf-8")
    app = Nuvom(root=tmp_path, environ={"NUVOM_LOGS_JSON__STREAM": "stderr"})
    resolved = app.plugin_settings["logs_json"]
    assert resolved.values == JsonLogsOptions(enabled=True, stream="stderr", fields={"service": "billing"})
    assert resolved.sources["stream"] == "environment (NUVOM_LOGS_JSON__STREAM)"
    assert resolved.sources["enabled"] == "pyproject.toml [tool.nuvom.logs_json]"
    handler = app.plugins.log_handler(app)
    assert isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, JsonFormatter)
    assert handler.formatter.static_fields == {"service": "billing"}
    with pytest.raises(ConfigError, match="NUVOM_LOGS_JSON__STREAM='pipe'"):
        _ = Nuvom(root=tmp_path, environ={"NUVOM_LOGS_JSON__STREAM": "pipe"}).plugin_settings
    off = Nuvom(root=tmp_path, environ={"NUVOM_LOGS_JSON__ENABLED": "false"})
    assert off.plugins.log_handler(off) is None


def test_file_handler_relative_to_the_project(tmp_path: Path) -> None:
    handler = make_handler(JsonLogsOptions(enabled=True, path="var/log/nuvom.jsonl"), tmp_path)
    try:
        handler.handle(record())
    finally:
        handler.close()
    [line] = (tmp_path / "var" / "log" / "nuvom.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["message"] == "hello world"


@pytest.fixture
def host_json_logs() -> Iterator[io.StringIO]:
    """What a host application does: its own handler, our formatter, on the nuvom logger."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter({"service": "host"}))
    logger = logging.getLogger("nuvom")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def events_in(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_host_attaching_the_formatter_gets_job_events_and_lease_loss(tmp_path: Path, host_json_logs: io.StringIO) -> None:
    app = make_app("memory", tmp_path, log_level="INFO")
    release = threading.Event()
    started = threading.Event()

    @app.task(name="host.wait")
    def wait() -> str:
        started.set()
        release.wait(30)
        return "done"

    @app.task(name="host.quick")
    def quick() -> int:
        return 1

    with use_app(app):
        held = app.enqueue(Job(task="host.wait"))
        quick_job = app.enqueue(Job(task="host.quick"))
        with running_worker(app, concurrency=2) as worker:
            assert started.wait(15)
            renew = app.queue.renew  # type: ignore[attr-defined]
            lost = threading.Event()

            def losing_renew(leases: dict[str, int], lease_secs: float) -> set[str]:
                gone = renew(leases, lease_secs)
                if held.id in leases:
                    lost.set()
                    return gone | {held.id}
                return gone

            app.queue.renew = losing_renew  # type: ignore[attr-defined]
            assert lost.wait(15)
            while not any(e["event"] == "job.lease_lost" for e in events_in(host_json_logs)):
                assert not worker.stopping
                threading.Event().wait(0.05)
            app.queue.renew = renew  # type: ignore[attr-defined]
            release.set()
    events = events_in(host_json_logs)
    assert all(e["service"] == "host" for e in events)
    names = [e["event"] for e in events]
    assert names[0] == "job.enqueued" and names.count("job.enqueued") == 2
    assert names.index("worker.ready") < names.index("worker.stopping") < names.index("worker.stopped")
    [lease] = [e for e in events if e["event"] == "job.lease_lost"]
    assert (lease["job_id"], lease["task"], lease["worker_id"], lease["attempt"], lease["level"]) == \
        (held.id, "host.wait", worker.id, 1, "warning")
    # (the lease loss is simulated: the backend still accepts the held job's outcome)
    [ok] = [e for e in events if e["event"] == "job.succeeded" and e["job_id"] == quick_job.id]
    assert ok["worker_id"] == worker.id and ok["task"] == "host.quick" and ok["duration"] >= 0


def test_no_job_events_without_a_json_handler(tmp_path: Path) -> None:
    """Installed but not writing JSON: the plugin adds nothing to text logs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("nuvom")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert not writes_json(logging.getLogger("nuvom.events"), logging.INFO)
        app = make_app("memory", tmp_path)

        @app.task(name="plain.add")
        def add(a: int, b: int) -> int:
            return a + b

        with use_app(app), running_worker(app, concurrency=1, burst=False):
            job = app.enqueue(Job(task="plain.add", args=[1, 2]))
            assert sdk.result(job.id, timeout=15, app=app) == 3
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert "nuvom.events" not in out.getvalue()
    assert "nuvom.worker worker" in out.getvalue()


def test_a_backend_error_is_one_line_with_its_traceback(tmp_path: Path, host_json_logs: io.StringIO) -> None:
    app = make_app("memory", tmp_path)

    @app.task(name="host.one")
    def one() -> int:
        return 1

    exchange = app.queue.exchange
    failures = [OSError("disk full")]

    def flaky_exchange(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return exchange(*args, **kwargs)

    app.queue.exchange = flaky_exchange  # type: ignore[method-assign]
    with use_app(app), running_worker(app, concurrency=1) as worker:
        job = app.enqueue(Job(task="host.one"))
        assert sdk.result(job.id, timeout=15, app=app) == 1
    lines = host_json_logs.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    [error] = [e for e in events if e["event"] == "worker.backend_error"]
    assert (error["level"], error["worker_id"], error["backend"]) == ("error", worker.id, "memory")
    assert (error["error_type"], error["error_message"]) == ("OSError", "disk full")
    assert error["traceback"].startswith("Traceback") and error["delay"] > 0


def test_a_job_dead_lettered_by_a_sweep_is_one_job_dead_line(tmp_path: Path, host_json_logs: io.StringIO) -> None:
    """The worker that ran it died; another worker's sweep spends its lease-expiry budget and says so once."""
    app = make_app("memory", tmp_path)
    with use_app(app):
        job = app.enqueue(Job(task="never.registered", max_lease_expiries=0))
        [claimed] = app.queue.claim(["default"], 1, 0.3, "killed-worker", start_now=1)  # type: ignore[attr-defined]
        assert claimed.id == job.id
        with running_worker(app, concurrency=1, queues=["other"]) as worker:  # sweeps, runs nothing itself
            deadline = time.monotonic() + 30
            while not any(e["event"] == "job.dead" for e in events_in(host_json_logs)):
                assert time.monotonic() < deadline, events_in(host_json_logs)
                time.sleep(0.05)
            time.sleep(0.6)  # a few more sweeps: nothing is said twice
    [dead] = [e for e in events_in(host_json_logs) if e.get("job_id") == job.id and e["event"] != "job.enqueued"]
    assert (dead["event"], dead["level"], dead["state"], dead["task"]) == ("job.dead", "error", "dead", "never.registered")
    assert dead["worker_id"] == "killed-worker" and "lease expired 1 times" in dead["reason"]
    assert worker.id != "killed-worker"
