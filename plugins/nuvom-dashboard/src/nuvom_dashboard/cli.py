"""``nuvom dashboard``: serve the dashboard with uvicorn."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from nuvom_dashboard.options import SECTION, DashboardOptions, check_binding
from nuvom_kernel.app import Nuvom
from nuvom_kernel.components import CommandContext
from nuvom_kernel.errors import NuvomError

MEMORY_WARNING = ("the memory backend keeps jobs inside one process: this dashboard sees only its own empty "
                  "store; use the sqlite (default) or file backend, or embed nuvom_dashboard.create_app "
                  "in the process that owns the jobs")


def resolve_options(app: Nuvom, **flags: Any) -> DashboardOptions:
    """The ``dashboard`` settings with the command's flags on top."""
    resolved = app.plugin_settings.get(SECTION)
    base = resolved.values if resolved is not None and isinstance(resolved.values, DashboardOptions) \
        else DashboardOptions()
    return base.model_copy(update={k: v for k, v in flags.items() if v is not None})


def make_command(cli: CommandContext) -> Any:
    """The ``dashboard`` command, failing through ``cli`` like every command."""

    def dashboard(
        host: str | None = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1). "
                                           "Any non-loopback address needs NUVOM_DASHBOARD__TOKEN."),
        port: int | None = typer.Option(None, "--port", "-p", min=1, max=65535,
                                           help="Port (default 8484, or NUVOM_DASHBOARD__PORT)."),
        read_only: bool | None = typer.Option(None, "--read-only/--read-write",
                                                 help="Serve pages only: no retry, cancel, purge or schedule action."),
    ) -> None:
        """Serve the web dashboard: queues, jobs, workers, dead letters and schedules, read from the store."""
        app = cli.app()
        local = cli.process_local_backend(app)
        options = resolve_options(app, host=host, port=port, read_only=read_only)
        try:
            check_binding(options.host, options.token_value())
        except ValueError as exc:
            cli.fail(str(exc), cli.EXIT_USAGE)
        err = Console(stderr=True, highlight=False)
        if local:
            err.print(f"[yellow]warning:[/] {escape(MEMORY_WARNING)}", soft_wrap=True)
        try:
            app.jobs  # noqa: B018 - a backend without a job store cannot be shown: say so before serving
        except NuvomError as exc:
            cli.fail(str(exc), cli.EXIT_FAILURE)

        import uvicorn

        from nuvom_dashboard.web import create_app

        shown = f"[{options.host}]" if ":" in options.host else options.host
        mode = " (read-only)" if options.read_only else ""
        guard = ", token required" if options.token is not None else ""
        err.print(f"Nuvom dashboard{mode} on http://{shown}:{options.port}{guard} — "
                  f"{app.settings.queue_backend} backend; Ctrl-C stops it", soft_wrap=True)
        try:
            uvicorn.run(create_app(app, options), host=options.host, port=options.port, log_config=None,
                        log_level="warning", access_log=False, server_header=False)
        finally:
            app.close()

    return dashboard


def register_commands(app: typer.Typer, cli: CommandContext) -> None:
    app.command("dashboard")(make_command(cli))
