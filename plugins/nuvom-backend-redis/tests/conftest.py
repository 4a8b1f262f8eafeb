"""A real Redis server for the tests, started here (no fakes).

``NUVOM_TEST_REDIS_URL`` points the tests at a server that already runs;
otherwise ``redis-server`` (from PATH, or Debian's /usr/bin) is started on a
free 127.0.0.1 port in a temporary directory and stopped at the end.  With
``NUVOM_CI=1`` a missing server fails the tests, elsewhere it skips them.
Every test uses a namespace of its own, so they never see each other's keys.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from nuvom_backend_redis import ConnectionSettings, RedisBackend


def no_server(reason: str) -> None:
    if os.environ.get("NUVOM_CI") == "1":
        pytest.fail(f"NUVOM_CI=1 and no Redis server: {reason}")
    pytest.skip(f"no Redis server: {reason}")


def server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)


def free_port(*, with_bus: bool = False) -> int:
    """A free 127.0.0.1 port; ``with_bus``: also free 10000 above it (a cluster
    node's bus port), so at most 55535."""
    if not with_bus:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisServer:
    """One ``redis-server`` this test run started (or ``url`` of an external one)."""

    url: str
    directory: Path | None = None
    port: int = 0
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.directory is not None
        binary = server_binary()
        assert binary is not None
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - handed to the process
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--daemonize", "no", "--protected-mode", "yes", *self.args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 30
        client = redis.Redis.from_url(self.url)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.AuthenticationError, redis.ResponseError):  # it asks for a password: it runs
                    return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    text = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server did not start:\n{text}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(30)
        self.proc = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


def start_server(directory: Path, *args: str) -> RedisServer:
    binary = server_binary()
    if binary is None:
        no_server("redis-server is not installed (apt-get install redis-server), "
                  "or set NUVOM_TEST_REDIS_URL to a server's URL")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port(with_bus="--cluster-enabled" in args)
    server = RedisServer(url=f"redis://127.0.0.1:{port}/0", directory=directory, port=port, args=list(args))
    try:
        server.start()
    except BaseException as exc:  # never leave a half-started server running
        if server.proc is not None:
            server.stop(kill=True)
        if isinstance(exc, (OSError, RuntimeError)):
            no_server(str(exc))
        raise
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    external = os.environ.get("NUVOM_TEST_REDIS_URL")
    if external:
        client = redis.Redis.from_url(external)
        try:
            client.ping()
        except redis.RedisError as exc:
            no_server(f"NUVOM_TEST_REDIS_URL does not answer: {type(exc).__name__}")
        finally:
            client.close()
        yield RedisServer(url=external)
        return
    server = start_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start a server of this test's own (to restart or kill), with extra config args."""
    started: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        started.append(start_server(tmp_path / f"redis-{len(started)}", *args))
        return started[-1]

    yield start
    for server in started:
        server.stop(kill=True)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of three primaries started here (``redis-cli --cluster create``);
    ``NUVOM_TEST_REDIS_CLUSTER_URL`` names an existing one instead.  Yields a node's URL."""
    external = os.environ.get("NUVOM_TEST_REDIS_CLUSTER_URL")
    if external:
        yield external
        return
    cli = shutil.which("redis-cli") or ("/usr/bin/redis-cli" if os.access("/usr/bin/redis-cli", os.X_OK) else None)
    if cli is None:
        no_server("redis-cli is not installed (it comes with redis-server): needed to form a cluster")
    base = tmp_path_factory.mktemp("cluster")
    nodes = [start_server(base / f"node{i}", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                          "--cluster-node-timeout", "5000") for i in range(3)]
    try:
        assert cli is not None
        made = subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
                               "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            no_server(f"redis-cli --cluster create failed: {made.stdout[-1000:]} {made.stderr[-1000:]}")
        deadline = time.monotonic() + 30
        for node in nodes:
            client = redis.Redis(port=node.port, decode_responses=True)
            while client.cluster("info").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    no_server("the test cluster did not reach cluster_state:ok")
                time.sleep(0.05)
            client.close()
        yield nodes[0].url
    finally:
        for node in nodes:
            node.stop(kill=True)


@pytest.fixture
def namespace() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_backend(redis_server: RedisServer, namespace: str) -> Iterator[Callable[..., RedisBackend]]:
    """Make backends on the test's namespace (closed at the end)."""
    opened: list[RedisBackend] = []

    def make(url: str | None = None, cluster: bool = False, **kwargs: object) -> RedisBackend:
        connection = ConnectionSettings(url=url or redis_server.url, reconnect_timeout_secs=30.0, cluster=cluster)
        opened.append(RedisBackend(connection, namespace=str(kwargs.pop("namespace", namespace)), **kwargs))  # type: ignore[arg-type]
        return opened[-1]

    yield make
    for b in opened:
        b.close()
