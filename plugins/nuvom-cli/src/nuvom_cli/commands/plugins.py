"""``nuvom plugin status``."""

from __future__ import annotations

import typer
from rich.table import Table

from nuvom_cli.state import state
from nuvom_cli.tables import fit


def register(plugin_app: typer.Typer) -> None:
    @plugin_app.command("status")
    def status(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
        """List every plugin: version, origin, hooks, what it provides, load errors."""
        st = state()
        records = st.plugins.plugin_status()
        if as_json:
            st.print_json([r.as_dict() for r in records])
            return
        table = Table(title="Nuvom plugins")
        for col in ("Plugin", "Version", "Origin", "Provides", "Hooks", "Status"):
            table.add_column(col, overflow="fold")
        for r in records:
            provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in r.provides.items()) or "-"
            hooks = ", ".join(h.removeprefix("nuvom_") for h in r.hooks) or "-"
            status = "[green]loaded[/]" if r.loaded and not r.error else f"[red]error[/] {r.error}"
            table.add_row(r.name, r.version or "-", r.origin, provides, hooks, status)
        st.console.print(fit(table))
