"""What the contract suites do not cover: etas far beyond the lease, skewed
worker clocks, resent requests, reconnects, blocking waits, secrets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from nuvom_backend_redis import ConnectionSettings, RedisBackend, RedisUnavailableError, redact
from nuvom_backend_redis.plugin import RedisOptions, make_backend

from nuvom_kernel.contracts import Completion
from nuvom_kernel.models import Job, JobState, Outcome
from nuvom_kernel.settings import NuvomSettings


def job(**fields: Any) -> Job:
    return Job(task="t.redis", **fields)


def test_an_eta_two_hours_ahead_is_not_delivered_before_it_whatever_the_lease(
        open_backend: Callable[..., RedisBackend]) -> None:
    """Celery on Redis redelivers an ETA longer than its visibility timeout; here
    the eta lives in the delayed set, apart from leases: a 30 s lease changes nothing."""
    producer = open_backend()
    eta = producer.server_time() + 7200
    stored = producer.enqueue(job(eta=eta))
    assert stored.state == JobState.SCHEDULED
    for ahead in (0.0, 60.0, 3600.0, 7190.0):  # workers at those times, each with 30 s leases
        worker = open_backend(clock_offset_secs=ahead)
        assert worker.claim(["default"], 10, 30.0, "w") == []
        assert worker.sweep() == 0
    at_eta = open_backend(clock_offset_secs=7201.0)
    [claimed] = at_eta.claim(["default"], 10, 30.0, "w", start_now=1)
    assert claimed.id == stored.id and claimed.attempts == 1
    later = open_backend(clock_offset_secs=7210.0)
    assert later.claim(["default"], 10, 30.0, "w2") == [] and later.sweep() == 0  # its lease still runs
    assert at_eta.finish(claimed.id, claimed.token or 0, Outcome(kind="succeeded", result=1))
    done = producer.get(stored.id)
    assert done is not None and done.state == JobState.SUCCEEDED
    assert [t.state for t in done.history].count(JobState.RUNNING) == 1  # delivered once


@pytest.mark.parametrize("skew", [60.0, -60.0])
def test_a_worker_clock_off_by_a_minute_neither_steals_nor_loses(open_backend: Callable[..., RedisBackend],
                                                                monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    """R14: the worker's clock never reaches the server; leases and etas are the server's."""
    producer, other = open_backend(), open_backend()
    stored = producer.enqueue(job(max_retries=1))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew)  # this process is the skewed host now
    worker = open_backend()
    [c] = worker.claim(["default"], 1, 30.0, "skewed", start_now=1)
    server_now = producer.server_time()
    assert c.lease_expires_at is not None and abs(c.lease_expires_at - (server_now + 30.0)) < 5
    assert worker.renew({c.id: c.token or 0}, 30.0) == set()
    assert other.sweep() == 0 and other.claim(["default"], 1, 30.0, "other") == []  # nothing stolen
    assert worker.finish(c.id, c.token or 0, Outcome(kind="retry", eta=time.time() + 0.3, at=time.time()))
    back = producer.get(stored.id)
    assert back is not None and back.eta is not None and abs(back.eta - (producer.server_time() + 0.3)) < 5
    deadline = time.monotonic() + 10
    while not (again := other.claim(["default"], 1, 30.0, "other")):
        assert time.monotonic() < deadline, "the retry never became due"
        time.sleep(0.05)
    assert [j.id for j in again] == [stored.id]


def test_a_resent_request_is_applied_once(open_backend: Callable[..., RedisBackend]) -> None:
    """A call whose reply was lost is sent again with its request id: the stored
    reply comes back and nothing is done twice."""
    b = open_backend()
    b.enqueue(job())
    [c] = b.claim(["default"], 1, 30.0, "w")
    script = b._scripts["EXCHANGE"]
    args = [b.prefix, "0.0", "60:request-1", "0", "1", c.id, str(c.token), "w", "30.0", "0", "0", "0"]
    first = script(keys=[b.key("token")], args=args, client=b.r)
    second = script(keys=[b.key("token")], args=args, client=b.r)
    assert first[1] == [c.id] and second == first
    running = b.get(c.id)
    assert running is not None and running.state == JobState.RUNNING and running.attempts == 1
    other = b.enqueue(job())
    claim = [b.prefix, "0.0", "60:request-2", "0", "0", "w", "30.0", "5", "0", "1", "default"]
    taken = script(keys=[b.key("token")], args=claim, client=b.r)
    again = script(keys=[b.key("token")], args=claim, client=b.r)
    assert [f[0] for f in taken[2]] == [f[0] for f in again[2]] == [other.id]
    assert taken[2][0][8] == again[2][0][8]  # the same token: claimed once
    assert b.claim(["default"], 5, 30.0, "w") == []


def test_calls_survive_killed_connections(open_backend: Callable[..., RedisBackend], redis_server: Any) -> None:
    b = open_backend()
    admin = redis.Redis.from_url(redis_server.url)
    try:
        for i in range(5):
            b.enqueue(job(args=[i]))
            admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        claimed = b.claim(["default"], 10, 30.0, "w", start_now=10)
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        reply = b.exchange([Completion(j.id, j.token or 0, Outcome(kind="succeeded")) for j in claimed],
                           ["default"], 0, 30.0, "w")
        assert len(claimed) == 5 and all(reply.accepted)
    finally:
        admin.close()


def test_a_call_waits_for_a_restarting_server_and_fails_clearly_past_the_timeout(
        own_server: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    server = own_server("--appendonly", "yes", "--appendfsync", "always", "--requirepass", "s3cret-pw")
    url = server.url.replace("redis://", "redis://:s3cret-pw@")
    b = RedisBackend(ConnectionSettings(url=url, reconnect_timeout_secs=30.0), namespace="restart")
    try:
        stored = b.enqueue(job())
        [c] = b.claim(["default"], 1, 30.0, "w", start_now=1)
        server.stop(kill=True)
        threading.Timer(0.5, server.start).start()
        with caplog.at_level(logging.INFO):
            assert b.finish(c.id, c.token or 0, Outcome(kind="succeeded", result="kept"))
        done = b.get(stored.id)
        assert done is not None and done.result == "kept"
        assert "s3cret-pw" not in caplog.text and "s3cret-pw" not in repr(b)
        server.stop(kill=True)
        impatient = RedisBackend(ConnectionSettings(url=url, reconnect_timeout_secs=0.3), namespace="restart")
        with pytest.raises(RedisUnavailableError) as info:
            impatient.get(stored.id)
        assert "s3cret-pw" not in str(info.value) and "redis://:***@127.0.0.1" in str(info.value)
        impatient.close()
    finally:
        b.close()


def test_wait_blocks_until_another_client_finishes_the_job(open_backend: Callable[..., RedisBackend]) -> None:
    caller, worker = open_backend(), open_backend()
    stored = caller.enqueue(job())
    assert caller.wait(stored.id, timeout=0.2) is None
    [c] = worker.claim(["default"], 1, 30.0, "w", start_now=1)
    timer = threading.Timer(0.3, worker.finish, args=(c.id, c.token or 0, Outcome(kind="succeeded", result=5)))
    timer.start()
    try:
        done = caller.wait(stored.id, timeout=30)
    finally:
        timer.join()
    assert done is not None and done.result == 5


def test_redact_hides_only_the_password() -> None:
    assert redact("redis://user:pw@host:6380/1") == "redis://user:***@host:6380/1"
    assert redact("rediss://:pw@host/0") == "rediss://:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


def test_settings_come_from_the_environment_and_the_secrets_stay_hidden(redis_server: Any, tmp_path: Any) -> None:
    from nuvom_kernel.app import Nuvom

    env = {"NUVOM_QUEUE_BACKEND": "redis", "NUVOM_RESULT_BACKEND": "redis", "NUVOM_REDIS__URL": redis_server.url,
           "NUVOM_REDIS__NAMESPACE": "from-env", "NUVOM_REDIS__PASSWORD": "not-printed"}
    app = Nuvom(root=tmp_path, environ=env)
    try:
        queue = app.queue
        assert isinstance(queue, RedisBackend) and queue.namespace == "from-env" and app.results is queue
        assert "not-printed" not in repr(queue)
    finally:
        app.close()
    with pytest.raises(Exception, match="scheme"):
        make_backend(NuvomSettings.model_validate({"project_root": str(tmp_path)}), {"url": "http://x"})
    opts = RedisOptions.model_validate({"password": "hidden-value"})
    assert "hidden-value" not in repr(opts) and "hidden-value" not in str(opts.model_dump())


def test_project_namespaces_differ_per_project_root(tmp_path: Any) -> None:
    from nuvom_backend_redis.plugin import namespace_for

    a = namespace_for("t-{project}", NuvomSettings.model_validate({"project_root": str(tmp_path / "a")}))
    b = namespace_for("t-{project}", NuvomSettings.model_validate({"project_root": str(tmp_path / "b")}))
    assert a != b and a.startswith("t-") and namespace_for("fixed", NuvomSettings()) == "fixed"


def test_verify_warns_when_the_server_may_evict_jobs(own_server: Callable[..., Any],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    server = own_server("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
    b = RedisBackend(ConnectionSettings(url=server.url), namespace="verify")
    try:
        with caplog.at_level(logging.WARNING, logger="nuvom.backend.redis"):
            b.verify()
        assert "maxmemory-policy allkeys-lru" in caplog.text
    finally:
        b.close()
    wrong = RedisBackend(ConnectionSettings(url="redis://127.0.0.1:1/0"), namespace="verify")
    with pytest.raises(RedisUnavailableError, match="did not answer ping"):
        wrong.verify()  # a wrong url fails at once, not after the reconnect timeout
    wrong.close()


def test_retry_refuses_while_another_live_job_holds_the_unique_key(open_backend: Callable[..., RedisBackend]) -> None:
    from nuvom_kernel.errors import InvalidStateError

    b = open_backend()
    first = b.enqueue(job(unique_key="k"))
    assert b.cancel(first.id) is not None
    second = b.enqueue(job(unique_key="k"))
    assert second.id != first.id
    with pytest.raises(InvalidStateError, match="holds its unique key"):
        b.retry(first.id)
    assert b.cancel(second.id) is not None
    again = b.retry(first.id)  # the key is free again
    assert again is not None and again.state == JobState.QUEUED
    assert b.enqueue(job(unique_key="k")).id == first.id


def _certificates(directory: Any) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1 it signed (openssl's command line)."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: needed to make test certificates")
    d = str(directory)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=nuvom-test-ca",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f"{d}/server.key",
        "-out", f"{d}/server.csr")
    (directory / "ext.cnf").write_text("subjectAltName = IP:127.0.0.1\n", encoding="utf-8")
    run("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
        "-days", "1", "-extfile", f"{d}/ext.cnf", "-out", f"{d}/server.crt")
    return f"{d}/ca.crt", f"{d}/server.crt", f"{d}/server.key"


def test_tls_from_plugin_settings(own_server: Callable[..., Any], tmp_path: Any) -> None:
    """``rediss://`` with the CA from the settings works; a server the client
    cannot verify is refused with a clear error."""
    import socket

    ca, cert, key = _certificates(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        tls_port = s.getsockname()[1]
    own_server("--tls-port", str(tls_port), "--tls-cert-file", cert, "--tls-key-file", key,
               "--tls-ca-cert-file", ca, "--tls-auth-clients", "no")
    settings = NuvomSettings.model_validate({"project_root": str(tmp_path)})
    url = f"rediss://127.0.0.1:{tls_port}/0"
    b = make_backend(settings, {"url": url, "tls_ca_file": ca, "namespace": "tls"})
    try:
        stored = b.enqueue(job())
        got = b.get(stored.id)
        assert got is not None and got.state == JobState.QUEUED
    finally:
        b.close()
    unverified = make_backend(settings, {"url": url, "namespace": "tls", "reconnect_timeout_secs": 0.5})
    try:
        with pytest.raises(RedisUnavailableError, match="(?i)certificate"):
            unverified.verify()  # the test CA is not trusted by default
    finally:
        unverified.close()
