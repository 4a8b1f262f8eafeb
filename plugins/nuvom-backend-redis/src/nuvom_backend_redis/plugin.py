"""Registers the ``redis`` store (queue, job store, results, workers, schedules) and its settings.

Settings live in section ``redis``: ``NUVOM_REDIS__URL``,
``NUVOM_REDIS__PASSWORD``, ``[tool.nuvom.redis]`` (see docs/backend-redis.md).
The url and the password are secrets: ``nuvom config`` never prints them,
and every message shows the url with its password replaced by ``***``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nuvom_kernel import hookimpl
from nuvom_kernel.settings import NuvomSettings
from nuvom_support.options import coerce_options

if TYPE_CHECKING:  # the implementation (and redis-py) is imported when a backend is made
    from nuvom_backend_redis.backend import RedisBackend

ROLES = ("jobs", "queue", "results", "schedules", "workers")

_DESCRIPTION = "Redis (one namespace, Lua scripts): queue, job store, results, workers, schedules; many hosts."


class RedisOptions(BaseModel):
    """The Redis backend's settings (section ``redis``: ``NUVOM_REDIS__URL``, ``[tool.nuvom.redis]``)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"),
                           description="Server URL: redis://host:port/db, rediss:// for TLS, unix:///path.sock.")
    username: str | None = Field(None, description="ACL user (Redis 6+); or in the url.")
    password: SecretStr | None = Field(None, description="Password; keep it in the environment (NUVOM_REDIS__PASSWORD).")
    namespace: str = Field("nuvom", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]*(\{project\})?[A-Za-z0-9_.\-]*$",
                           description="Hash tag of every key ({nuvom}); '{project}' is replaced by a hash of the project root.")
    cluster: bool = Field(False, description="The url names a node of a Redis Cluster (every key of a namespace is in one slot).")
    tls: bool = Field(False, description="Use TLS (implied by a rediss:// url).")
    tls_ca_file: str | None = Field(None, description="CA bundle that signed the server's certificate.")
    tls_cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    tls_key_file: str | None = Field(None, description="Client key (mutual TLS).")
    tls_verify: bool = Field(True, description="Verify the server's certificate.")
    socket_timeout_secs: float = Field(10.0, gt=0, le=600, allow_inf_nan=False,
                                       description="How long one reply may take before the call is resent.")
    reconnect_timeout_secs: float = Field(30.0, ge=0, le=86_400, allow_inf_nan=False,
                                          description="How long a call keeps reconnecting before it fails.")
    clock_offset_secs: float = Field(0.0, ge=-86_400 * 365, le=86_400 * 365, allow_inf_nan=False,
                                     description="Tests only: shifts the server clock the scripts read.")


def options_model(options: RedisOptions | dict[str, Any]) -> RedisOptions:
    return coerce_options(RedisOptions, options, "redis")


def namespace_for(template: str, settings: NuvomSettings) -> str:
    """``template`` with ``{project}`` replaced by a short hash of the project root."""
    if "{project}" not in template:
        return template
    root = str(settings.resolve_path(".").resolve())
    return template.replace("{project}", hashlib.sha256(root.encode()).hexdigest()[:12])


def make_backend(settings: NuvomSettings, options: RedisOptions | dict[str, Any]) -> RedisBackend:
    from nuvom_backend_redis.backend import RedisBackend
    from nuvom_backend_redis.connection import ConnectionSettings

    opts = options_model(options)
    connection = ConnectionSettings(
        url=opts.url.get_secret_value(), username=opts.username,
        password=opts.password.get_secret_value() if opts.password else None, tls=opts.tls,
        tls_ca_file=opts.tls_ca_file, tls_cert_file=opts.tls_cert_file, tls_key_file=opts.tls_key_file,
        tls_verify=opts.tls_verify, socket_timeout_secs=opts.socket_timeout_secs,
        reconnect_timeout_secs=opts.reconnect_timeout_secs, cluster=opts.cluster,
    )
    return RedisBackend(connection, namespace=namespace_for(opts.namespace, settings),
                        clock_offset_secs=opts.clock_offset_secs)


@hookimpl
def nuvom_register_settings(register: Any) -> None:
    register("redis", RedisOptions)


@hookimpl
def nuvom_register_storage(register: Any) -> None:
    register("redis", make_backend, roles=ROLES, description=_DESCRIPTION)
