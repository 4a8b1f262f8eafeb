"""Builds the ``nuvom`` typer app from the plugin manager."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from nuvom_cli import helpstyle
from nuvom_cli.state import EXIT_FAILURE, CliState, set_state
from nuvom_kernel.errors import PluginError
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.settings import project_root
from nuvom_kernel.storefaults import store_error


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
    early = _Collect(state.early_records)
    nuvom_logger = logging.getLogger("nuvom")
    nuvom_logger.addHandler(early)  # plugin load errors wait for the handler the command chooses
    try:
        plugins.load()
    except PluginError as exc:  # NUVOM_STRICT_PLUGINS
        nuvom_logger.removeHandler(early)
        state.replay_early_records()
        state.err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
    nuvom_logger.removeHandler(early)

    def report(name: str, exc: BaseException) -> None:
        state.err.print(f"[yellow]warning:[/] plugin {escape(name)} could not add its commands: {escape(str(exc))}")

    plugins.register_commands(app, on_error=report, cli=state)
    return app


#: Commands other plugins add, and the distribution that does, for "No such command" hints.
PLUGIN_COMMANDS = {"discover": "nuvom-discovery-ast", "list": "nuvom-discovery-ast"}


def missing_command_hint(app: typer.Typer, args: list[str], plugins: NuvomPluginManager) -> str | None:
    """Why ``nuvom <args[0]>`` does not exist, when a known plugin provides it."""
    if not args or args[0] not in PLUGIN_COMMANDS:
        return None
    if args[0] in typer.main.get_command(app).commands:  # type: ignore[attr-defined]
        return None
    dist = PLUGIN_COMMANDS[args[0]]
    if dist in plugins.disabled:
        return f"`nuvom {args[0]}` comes from the plugin {dist}, which is installed but {plugins.disabled[dist]}"
    record = plugins.records.get(dist)
    if record is not None and record.error:
        return f"`nuvom {args[0]}` comes from the plugin {dist}, which failed to load: {record.error}"
    return f"`nuvom {args[0]}` comes from the plugin {dist}, which is not installed: pip install {dist} (pip install nuvom includes it)"


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.  A fault of the job store (full disk,
    permissions, damaged database) that a command did not handle is printed
    as one line naming the path and the fix, with exit code 1, not a traceback."""
    args = argv if argv is not None else sys.argv[1:]
    app = build_app()
    from nuvom_cli.state import state

    hint = missing_command_hint(app, args, state().plugins)
    if hint:
        state().replay_early_records()
        state().err.print(f"[bold red]error:[/] {escape(hint)}", soft_wrap=True)
        raise SystemExit(2)
    try:
        app(args=args, prog_name="nuvom")
    except OSError as exc:  # StoreError is an OSError too
        if isinstance(exc, BrokenPipeError):
            raise
        fault = store_error(exc, what="a file Nuvom uses:")
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(str(fault))}", soft_wrap=True)
        raise SystemExit(EXIT_FAILURE) from None
    finally:
        state().replay_early_records()  # a command that built no app still reports load errors
