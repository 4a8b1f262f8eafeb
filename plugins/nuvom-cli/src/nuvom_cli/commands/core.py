"""``nuvom version`` and ``nuvom config``."""

from __future__ import annotations

import os
import platform
from typing import Any

import typer
from rich.table import Table

from nuvom_cli.state import EXIT_USAGE, state
from nuvom_cli.tables import fit
from nuvom_kernel import __version__
from nuvom_kernel.errors import ConfigError, PluginError
from nuvom_kernel.settings import (
    ENV_PREFIX,
    NuvomSettings,
    load_settings,
    project_root,
    project_root_source,
)


def register(app: typer.Typer) -> None:
    @app.command("version")
    def version() -> None:
        """Print the Nuvom version."""
        state().console.print(f"nuvom {__version__} (Python {platform.python_version()})")

    @app.command("config")
    def config(
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Show the effective settings and where each value came from."""
        st = state()
        try:
            loaded = load_settings(st.plugins.root, plugins=st.plugins)
        except (ConfigError, PluginError) as exc:
            st.fail(f"configuration error: {exc}", EXIT_USAGE)
        if st.plugins.root == project_root():  # not given by an embedding program: say how it was found
            loaded.sources["project_root"] = project_root_source(dict(os.environ))
        data = loaded.settings.model_dump(mode="json")
        plugin_rows = [
            (section, resolved.declaration.plugin, key, value, resolved.sources.get(key, "default"),
             resolved.declaration.env_names(key))
            for section, resolved in sorted(loaded.plugins.items())
            for key, value in resolved.public().items()  # secrets masked, environment references unexpanded
        ]
        if as_json:
            plugins: dict[str, Any] = {}
            for section, plugin, key, value, source, env in plugin_rows:
                entry = plugins.setdefault(section, {"plugin": plugin, "settings": {}})
                entry["settings"][key] = {"value": value, "source": source, "env": env}
            st.print_json({
                "root": str(loaded.root),
                "root_source": loaded.sources["project_root"],
                "settings": {k: {"value": v, "source": loaded.sources.get(k, "default"),
                                 "env": ENV_PREFIX + k.upper()} for k, v in data.items()},
                "plugins": plugins,
                "warnings": loaded.warnings,
            })
            return
        table = Table(title=f"Nuvom settings (project root {loaded.root}: {loaded.sources['project_root']})")
        table.add_column("Setting")
        table.add_column("Value")
        table.add_column("Source")
        for key, value in data.items():
            table.add_row(ENV_PREFIX + key.upper(), str(value), loaded.sources.get(key, "default"))
        st.console.print(fit(table))  # the warnings were logged by load_settings, one line each
        if plugin_rows:
            ptable = Table(title="Plugin settings")
            ptable.add_column("Setting")
            ptable.add_column("Value")
            ptable.add_column("Source")
            ptable.add_column("Plugin")
            for _section, plugin, _key, value, source, env in plugin_rows:
                ptable.add_row(env[0], str(value), source, plugin)
            st.console.print(fit(ptable))


__all__ = ["register", "NuvomSettings"]
