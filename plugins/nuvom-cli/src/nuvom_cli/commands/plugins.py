"""``nuvom plugin status``."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from nuvom_cli.state import state
from nuvom_cli.tables import fit
from nuvom_kernel.errors import PluginError
from nuvom_kernel.manager import NuvomPluginManager

#: Roles a working installation needs: (registry kind or "commands", what to call it, what to install).
ROLES = (
    ("queue_backends", "queue backend", "nuvom-backend-sqlite (or pip install nuvom)"),
    ("result_backends", "result backend", "nuvom-backend-sqlite (or pip install nuvom)"),
    ("executors", "executor", "nuvom-executor-thread (or pip install nuvom)"),
    ("discoverers", "task discoverer", "nuvom-discovery-ast (or pip install nuvom)"),
    ("commands", "command-line plugin", "nuvom-cli (or pip install nuvom)"),
)


def missing_roles(plugins: NuvomPluginManager) -> list[str]:
    """A warning for each role no loaded plugin provides."""
    try:
        registries = plugins.registries
    except PluginError:
        return []
    has_commands = any("nuvom_register_commands" in r.hooks for r in plugins.records.values() if r.loaded)
    out = []
    for kind, what, install in ROLES:
        present = has_commands if kind == "commands" else bool(registries[kind].names())
        if not present:
            out.append(f"no {what} is installed or enabled: pip install {install}")
    return out


def register(plugin_app: typer.Typer) -> None:
    @plugin_app.command("status")
    def status(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
        """List every plugin: version, origin, hooks, what it provides, load errors; disabled
        plugins; and a warning for each role (queue backend, executor, ...) nothing provides."""
        st = state()
        records = st.plugins.plugin_status()
        disabled = st.plugins.disabled
        warnings = missing_roles(st.plugins)
        if as_json:
            rows: list[dict[str, Any]] = [{**r.as_dict(), "disabled": None} for r in records]
            rows += [{"name": name, "version": None, "distribution": None, "origin": "entry point", "module": None,
                      "loaded": False, "hooks": [], "provides": {}, "error": None, "disabled": why}
                     for name, why in sorted(disabled.items())]
            st.print_json(rows)
        else:
            table = Table(title="Nuvom plugins")
            for col in ("Plugin", "Version", "Origin", "Provides", "Hooks", "Status"):
                table.add_column(col)
            for r in records:
                provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in r.provides.items()) or "-"
                hooks = ", ".join(h.removeprefix("nuvom_") for h in r.hooks) or "-"
                state_ = "[green]loaded[/]" if r.loaded and not r.error else f"[red]error[/] {escape(r.error or '')}"
                table.add_row(r.name, r.version or "-", r.origin, provides, hooks, state_)
            for name, why in sorted(disabled.items()):
                table.add_row(name, "-", "entry point", "-", "-", f"[yellow]{escape(why)}[/]")
            st.console.print(fit(table))
        for warning in warnings:
            st.err.print(f"[yellow]warning:[/] {escape(warning)}")
