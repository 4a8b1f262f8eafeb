"""The plugin's settings (section ``dashboard``) and the binding rules (S7)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, SecretStr

SECTION = "dashboard"
#: Shorter tokens are refused: the token is all that guards a dashboard on the network.
MIN_TOKEN_CHARS = 16
TOKEN_ADVICE = ("set NUVOM_DASHBOARD__TOKEN in the environment, e.g. "
                "export NUVOM_DASHBOARD__TOKEN=$(python -c \"import secrets; print(secrets.token_urlsafe(32))\")")


class DashboardOptions(BaseModel):
    """``NUVOM_DASHBOARD__<KEY>``, ``[tool.nuvom.dashboard]``, ``[plugins.settings.dashboard]``."""

    model_config = ConfigDict(extra="forbid")

    #: where ``nuvom dashboard`` listens; any address but loopback needs ``token``
    host: str = "127.0.0.1"
    port: int = Field(default=8484, ge=1, le=65535)
    #: required to serve on a non-loopback address; asked for once per browser (a cookie keeps it)
    token: SecretStr | None = None
    #: serve pages only: no retry, cancel, purge or schedule action route exists
    read_only: bool = False
    #: jobs per page in the lists
    page_size: int = Field(default=50, ge=1, le=500)
    #: the overview's chart covers this many minutes, one bar a minute
    chart_minutes: int = Field(default=60, ge=5, le=1440)
    #: the chart reads at most this many finished jobs (newest first), so a page stays cheap
    chart_scan_limit: int = Field(default=1000, ge=100, le=100_000)
    #: the most jobs one "retry/cancel all matching" click changes (click again for more)
    bulk_limit: int = Field(default=1000, ge=1, le=100_000)

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a usable token (S7), naming the fix."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the dashboard token is {len(token)} characters long; use at least "
                         f"{MIN_TOKEN_CHARS} random characters ({TOKEN_ADVICE})")
    if not is_loopback(host) and token is None:
        raise ValueError(f"serving the dashboard on {host} (not loopback) needs a token: {TOKEN_ADVICE}; "
                         "or keep the default --host 127.0.0.1")
