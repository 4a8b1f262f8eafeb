"""A ``redis-server`` the tests start themselves: a free 127.0.0.1 port, a
temporary directory, no persistence unless asked (``--appendonly yes``...).

The binary comes from ``PATH`` or Debian's ``/usr/bin/redis-server``
(``apt-get install redis-server``).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from netservers import unavailable


def no_server(reason: str) -> None:
    unavailable("Redis", reason)


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
