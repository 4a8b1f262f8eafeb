"""The nuvom-cli plugin adds the core commands through the same hook as any plugin."""

from __future__ import annotations

from typing import Any

from nuvom_kernel import hookimpl


@hookimpl
def nuvom_register_commands(app: Any) -> None:
    # typer, rich and the command modules load when a command line is built,
    # not in every process that loads the plugins (a worker, a web app)
    import typer

    from nuvom_cli.commands import (
        core,
        jobs,
        listing,
        plugin_tools,
        plugins,
        produce,
        testworker,
        worker,
    )

    core.register(app)
    worker.register(app)
    worker.register_stop(app)
    jobs.register(app)
    listing.register(app)
    produce.register(app)
    testworker.register(app)
    plugin_app = typer.Typer(help="Inspect and test plugins.", no_args_is_help=True)
    plugins.register(plugin_app)
    plugin_tools.register(plugin_app)
    app.add_typer(plugin_app, name="plugin")
