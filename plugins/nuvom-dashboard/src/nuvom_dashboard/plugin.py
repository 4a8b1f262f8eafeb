"""Hook implementations: the ``dashboard`` settings section and the ``nuvom dashboard`` command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuvom_dashboard.options import SECTION, DashboardOptions
from nuvom_kernel import hookimpl

if TYPE_CHECKING:
    from nuvom_kernel.hookspecs import RegisterSettings


@hookimpl
def nuvom_register_settings(register: RegisterSettings) -> None:
    register(SECTION, DashboardOptions)


@hookimpl
def nuvom_register_commands(app: Any, cli: Any) -> None:
    # starlette, jinja2 and uvicorn are imported when the command runs, not when the CLI is built
    from nuvom_dashboard.cli import register_commands

    register_commands(app, cli)
