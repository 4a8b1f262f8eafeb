"""Connecting to Redis: URL, password, TLS, and calls that survive a restart.

A call that loses its connection (server restart, ``CLIENT KILL``, failover)
is sent again with growing pauses (50 ms up to 2 s) until
``reconnect_timeout_secs`` pass; the scripts it runs carry a request id, so a
call whose reply was lost is not applied twice.  Passwords never appear in a
message: :func:`redact` is what every message shows of the URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    TimeoutError,
    TryAgainError,
)

from nuvom_kernel.errors import ConfigError, NuvomError

log = logging.getLogger("nuvom.backend.redis")
T = TypeVar("T")

#: Errors after which the same call is sent again on a new connection.
TRANSIENT: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, BusyLoadingError, ClusterDownError,
                                              TryAgainError)


class RedisUnavailableError(NuvomError):
    """Redis could not be reached within ``reconnect_timeout_secs``."""


def redact(url: str) -> str:
    """``url`` without its password (``redis://user:***@host:6379/0``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable Redis URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class ConnectionSettings:
    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True
    socket_timeout_secs: float = 10.0
    connect_timeout_secs: float = 5.0
    reconnect_timeout_secs: float = 30.0
    #: a Redis Cluster: the url names any node, the client follows the slot map
    cluster: bool = False

    def client(self, *, socket_timeout: float | None = None, max_connections: int | None = None) -> Any:
        """A client (with its own pool) for this server; nothing is sent yet."""
        scheme = urlsplit(self.url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"redis url {redact(self.url)!r}: the scheme must be redis://, rediss:// (TLS) or "
                              f"unix:// (e.g. NUVOM_REDIS__URL=redis://127.0.0.1:6379/0)")
        kwargs: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout_secs if socket_timeout is None else socket_timeout,
            "socket_connect_timeout": self.connect_timeout_secs,
        }
        if max_connections is not None:
            kwargs["max_connections"] = max_connections
        if self.username is not None:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        url = self.url
        if self.tls or scheme == "rediss":
            if scheme == "unix":
                raise ConfigError("redis tls: TLS needs a redis:// or rediss:// URL, not a Unix socket")
            url = "rediss" + url[len(scheme):]  # the scheme picks redis-py's TLS connection
            kwargs["ssl_cert_reqs"] = "required" if self.tls_verify else "none"
            if self.tls_ca_file:
                kwargs["ssl_ca_certs"] = self.tls_ca_file
            if self.tls_cert_file:
                kwargs["ssl_certfile"] = self.tls_cert_file
            if self.tls_key_file:
                kwargs["ssl_keyfile"] = self.tls_key_file
        if self.cluster and scheme == "unix":
            raise ConfigError("redis cluster: a cluster is reached by redis:// or rediss:// URLs, not a Unix socket")
        try:
            if self.cluster:
                return redis.RedisCluster.from_url(url, **kwargs)
            return redis.Redis.from_url(url, **kwargs)
        except ValueError as exc:
            raise ConfigError(f"redis url {redact(self.url)!r} is not valid: {str(exc).replace(self.url, redact(self.url))}"
                              ) from None


def with_reconnect(call: Callable[[], T], settings: ConnectionSettings, what: str, *,
                   patience: float | None = None) -> T:
    """``call()``, sent again after a lost connection until it succeeds or
    ``patience`` (default ``reconnect_timeout_secs``) seconds pass (then
    :class:`RedisUnavailableError`)."""
    patience = settings.reconnect_timeout_secs if patience is None else patience
    deadline = time.monotonic() + patience
    delay = 0.05
    warned = False
    while True:
        try:
            return call()
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise RedisUnavailableError(
                    f"Redis at {redact(settings.url)} did not answer {what} for {patience:g} s "
                    f"({type(exc).__name__}: {exc}); check that the server runs and the url/password/TLS settings "
                    f"(section [tool.nuvom.redis], NUVOM_REDIS__URL)") from None
            if not warned:
                log.warning("redis at %s: %s (%s); reconnecting", redact(settings.url), what, type(exc).__name__)
                warned = True
            time.sleep(delay)
            delay = min(2.0, delay * 2)
