"""A real Redis server for the tests (tests/netservers: no fakes), and per-test namespaces.

``NUVOM_TEST_REDIS_URL`` points the tests at a server that already runs;
otherwise ``redis-server`` (from PATH, or Debian's /usr/bin) is started on a
free 127.0.0.1 port in a temporary directory and stopped at the end.  With
``NUVOM_CI=1`` a missing server fails the tests, elsewhere it skips them.
Every test uses a namespace of its own, so they never see each other's keys.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from netservers.redis_server import RedisServer, no_server, start_server
from nuvom_backend_redis import ConnectionSettings, RedisBackend

# redis_server: the session's server, from tests/netservers/fixtures.py (registered by
# the repository's root conftest.py)


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
