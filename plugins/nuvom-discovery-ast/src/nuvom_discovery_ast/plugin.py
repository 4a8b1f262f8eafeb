"""Hook implementations: the ``ast`` discoverer and the discovery commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuvom_kernel import hookimpl
from nuvom_kernel.errors import ConfigError

if TYPE_CHECKING:
    from nuvom_discovery_ast.discoverer import AstDiscoverer
    from nuvom_kernel.hookspecs import Register
    from nuvom_kernel.settings import NuvomSettings


def make_discoverer(settings: NuvomSettings, options: dict[str, Any]) -> AstDiscoverer:
    """Factory for the ``ast`` discoverer; it takes no plugin options."""
    if options:
        raise ConfigError(
            f"the nuvom-discovery-ast plugin takes no options, got {', '.join(sorted(options))}; "
            "remove them from [plugins.settings.nuvom-discovery-ast] in .nuvom_plugins.toml "
            "(filters belong in .nuvomignore or --include/--exclude)"
        )
    from nuvom_discovery_ast.discoverer import AstDiscoverer

    return AstDiscoverer()


@hookimpl
def nuvom_register_discoverers(register: Register) -> None:
    register(
        "ast",
        make_discoverer,
        description="Finds @task functions by parsing the source (no imports), with a per-file cache.",
    )


@hookimpl
def nuvom_register_commands(app: Any, cli: Any) -> None:
    # typer and rich are imported only when the CLI is built, not by workers.
    from nuvom_discovery_ast.cli import register_commands

    register_commands(app, cli)
