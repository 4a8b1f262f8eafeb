"""A small HTTP server for ``/metrics``: loopback by default, a bearer token otherwise (S7)."""

from __future__ import annotations

import hmac
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from nuvom_metrics_prometheus.options import exposure_problem


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """Serves ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    ``port=0`` picks a free port (:attr:`port` says which).  Off loopback a
    ``token`` is required; with a token every request must carry
    ``Authorization: Bearer <token>``.
    """

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None) -> None:
        problem = exposure_problem(host, token)
        if problem:
            raise ValueError(problem)
        expected = f"Bearer {token}".encode() if token else None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                if expected is not None and not hmac.compare_digest(
                        self.headers.get("Authorization", "").encode(), expected):
                    self._reply(401, b"missing or wrong bearer token\n", "text/plain; charset=utf-8",
                                {"WWW-Authenticate": "Bearer"})
                    return
                path = self.path.split("?", 1)[0]
                if path not in ("/metrics", "/"):
                    self._reply(404, b"not found: metrics are at /metrics\n", "text/plain; charset=utf-8")
                    return
                try:
                    body = generate_latest(registry)
                except Exception as exc:  # noqa: BLE001 - reported to the scraper, the server goes on
                    self._reply(500, f"collecting metrics failed: {exc}\n".encode(), "text/plain; charset=utf-8")
                    return
                self._reply(200, body, CONTENT_TYPE_LATEST)

            def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
                return

        bare = host.strip("[]")
        server_class = _IPv6Server if ":" in bare else ThreadingHTTPServer
        self._httpd = server_class((bare, port), Handler)
        self._httpd.daemon_threads = True
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nuvom-metrics", daemon=True)
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the server stops; short joins keep Ctrl-C working on every OS."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
