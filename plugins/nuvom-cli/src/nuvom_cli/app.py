"""Builds the ``nuvom`` typer app from the plugin manager."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

from nuvom_cli import helpstyle
from nuvom_cli.state import CliState, set_state
from nuvom_kernel.errors import PluginError
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.settings import project_root


def build_app(plugins: NuvomPluginManager | None = None, root: str | os.PathLike[str] | None = None) -> typer.Typer:
    """A fresh app with every plugin's commands (this plugin's included)."""
    if plugins is None:  # NUVOM_PROJECT_ROOT, else the nearest .nuvom/ or pyproject.toml upwards
        plugins = NuvomPluginManager(Path(root) if root is not None else project_root())
    helpstyle.apply()
    state = CliState(plugins=plugins)
    set_state(state)
    app = typer.Typer(
        name="nuvom",
        help="Nuvom: background jobs with no broker. Run `nuvom COMMAND --help` for details.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    try:
        plugins.load()
    except PluginError as exc:  # NUVOM_STRICT_PLUGINS
        state.err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None

    def report(name: str, exc: BaseException) -> None:
        state.err.print(f"[yellow]warning:[/] plugin {escape(name)} could not add its commands: {escape(str(exc))}")

    plugins.register_commands(app, on_error=report)
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app = build_app()
    app(args=argv if argv is not None else sys.argv[1:], prog_name="nuvom")
