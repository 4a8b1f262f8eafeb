"""The commands this plugin adds to `nuvom` (here: `nuvom hello`)."""

from __future__ import annotations

import json
from typing import Any

import typer
from nuvom_kernel.components import CommandContext
from nuvom_kernel.manager import NuvomPluginManager


def greeting(name: str) -> dict[str, Any]:
    plugins = [r.name for r in NuvomPluginManager().plugin_status() if r.loaded]
    return {"message": f"Hello, {name}!", "from": "{{ cookiecutter.project_slug }}", "plugins_loaded": len(plugins)}


def register(app: typer.Typer, cli: CommandContext) -> None:
    @app.command("hello")
    def hello(
        name: str = typer.Option("world", "--name", "-n", help="Who to greet."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Say hello (an example command from {{ cookiecutter.project_slug }})."""
        if not name.strip():
            cli.fail("--name is empty: pass who to greet", cli.EXIT_USAGE)  # exit 2, as every nuvom command
        data = greeting(name)
        if as_json:
            typer.echo(json.dumps(data))
        else:
            typer.echo(f"{data['message']} ({data['plugins_loaded']} Nuvom plugins loaded)")
