"""A throwaway PostgreSQL server for the tests: initdb in a temp dir, 127.0.0.1, a free port.

``NUVOM_TEST_POSTGRES_URL`` names an existing server instead (each test
session then works in its own schemas there).  Binaries come from ``PATH``,
``pg_config --bindir`` or Debian's ``/usr/lib/postgresql/<version>/bin``.

PostgreSQL refuses to run as root.  As root (CI containers) the server runs
as the ``postgres`` user (or ``nobody``) inside a private mount namespace
whose ``/dev/null`` is a fresh null device (``unshare -m``; ``initdb`` and
the server write to ``/dev/null``, which only root may open on some hosts).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg


class ServerUnavailable(RuntimeError):
    """No server can be started here; the message says why."""


def find_bindir() -> Path:
    on_path = shutil.which("postgres") or shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    raise ServerUnavailable("no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql, "
                            "or set NUVOM_TEST_POSTGRES_URL to an existing server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One server: :meth:`start`, :meth:`stop`, :meth:`restart` (same data, same port)."""

    def __init__(self) -> None:
        if sys.platform == "win32":
            raise ServerUnavailable("the test server launcher is POSIX-only; set NUVOM_TEST_POSTGRES_URL")
        self.bindir = find_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="nuvom-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.user is None:
                raise ServerUnavailable("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
            if not shutil.which("unshare") or not shutil.which("setpriv"):
                raise ServerUnavailable("running as root needs unshare and setpriv (util-linux) to start PostgreSQL")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.url = f"postgresql://nuvom@127.0.0.1:{self.port}/postgres"

    #: as root: run in a private mount namespace with its own /dev/null (False
    #: once ``unshare`` turned out to be forbidden here, e.g. in a container
    #: without CAP_SYS_ADMIN: then setpriv alone, which works where /dev/null is usable)
    use_namespace = True

    def _command(self, script: str) -> list[str]:
        """``sh -c script`` as the server's user (root: in a private mount namespace)."""
        if self.user is None:
            return ["sh", "-c", script]
        if not self.use_namespace:
            return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups",
                    "sh", "-c", script]
        wrapper = (
            f'set -e; rm -f "{self.dir}/null"; mknod -m 666 "{self.dir}/null" c 1 3; mount --bind "{self.dir}/null" /dev/null; '
            f"exec setpriv --reuid={self.user.pw_uid} --regid={self.user.pw_gid} --clear-groups sh -c '{script}'"
        )
        return ["unshare", "-m", "sh", "-c", wrapper]

    def init(self) -> None:
        log = self.dir / "initdb.log"
        script = (f'"{self.bindir}/initdb" -D "{self.data}" -A trust -U nuvom --no-sync -E UTF8 --locale=C '
                  f'>"{log}" 2>&1')
        proc = subprocess.run(self._command(script), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 and self.user is not None and self.use_namespace and (
                "unshare" in proc.stderr or "mount" in proc.stderr or "mknod" in proc.stderr):
            self.use_namespace = False  # no private namespace allowed here: try without it
            shutil.rmtree(self.data, ignore_errors=True)
            proc = subprocess.run(self._command(script), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServerUnavailable(f"initdb failed ({proc.returncode}): {proc.stderr.strip()} {tail}")

    def start(self) -> None:
        if not self.data.exists():
            self.init()
        log = self.dir / "server.log"
        script = (
            f'exec "{self.bindir}/postgres" -D "{self.data}" -p {self.port} -k "{self.dir}" '
            "-c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c shared_buffers=64MB -c log_min_messages=warning "
            f'>>"{log}" 2>&1'
        )
        self.proc = subprocess.Popen(self._command(script))
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise ServerUnavailable(f"PostgreSQL did not start (exit {self.proc.poll()}): {tail}") from None
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (SIGINT: disconnect clients, clean shutdown) or ``immediate`` (SIGQUIT: like a crash)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
