"""The plugin's settings, section ``prometheus``.

``NUVOM_PROMETHEUS__PORT`` / ``__HOST`` / ``__TOKEN``, ``[tool.nuvom.prometheus]``,
``[plugins.settings.prometheus]``; Nuvom 0.11's ``NUVOM_PROMETHEUS_PORT`` is the
same setting as ``NUVOM_PROMETHEUS__PORT``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

SECTION = "prometheus"
#: Nuvom 0.11's name of the port (it read it in its own Prometheus plugin)
ENV_NAMES = {"port": "NUVOM_PROMETHEUS_PORT"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PrometheusOptions(BaseModel):
    """Where a worker (``nuvom runworker``) serves ``/metrics``; ``nuvom metrics serve``
    uses the same values unless its options say otherwise."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(None, ge=0, le=65535, description=(
        "Port a worker serves /metrics on while it runs (0: any free port, logged); "
        "empty: workers serve nothing, use `nuvom metrics serve`."))
    host: str = Field("127.0.0.1", min_length=1, description=(
        "Address to bind; anything but a loopback address needs a token."))
    token: SecretStr | None = Field(None, validate_default=True, description=(
        "Bearer token scrapers must send (Authorization: Bearer <token>); required off loopback. "
        "Keep it in the environment or a {\"$env\": ...} reference, never in a committed file."))

    @field_validator("port", mode="before")
    @classmethod
    def _empty_port(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("token", mode="before")
    @classmethod
    def _empty_token(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("token")
    @classmethod
    def _token_off_loopback(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        problem = exposure_problem(info.data.get("host", "127.0.0.1"), value)
        if problem:
            raise ValueError(problem)
        return value


def exposure_problem(host: str, token: SecretStr | str | None) -> str | None:
    """Why serving on ``host`` with ``token`` is refused (S7: loopback unless a token guards it), or None."""
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    if is_loopback(host) or secret:
        return None
    return (f"host {host!r} is not a loopback address: metrics served beyond this machine need a token; "
            "set NUVOM_PROMETHEUS__TOKEN (scrapers send `Authorization: Bearer <token>`) or bind 127.0.0.1")
