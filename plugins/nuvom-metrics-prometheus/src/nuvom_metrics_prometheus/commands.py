"""``nuvom metrics serve`` and ``nuvom metrics show``."""

from __future__ import annotations

import sys
from typing import Any

import typer

from nuvom_kernel.components import CommandContext


def register(app: Any, cli: CommandContext) -> None:
    metrics = typer.Typer(help="Prometheus metrics of this project (nuvom-metrics-prometheus).",
                          no_args_is_help=True)

    @metrics.command("serve")
    def serve_cmd(
        port: int = typer.Option(None, "--port", "-p", min=0, max=65535,
                                 help="Port (default NUVOM_PROMETHEUS__PORT, else 9150; 0: any free port)."),
        host: str = typer.Option(None, "--host",
                                 help="Address to bind (default NUVOM_PROMETHEUS__HOST, 127.0.0.1); "
                                      "another address needs NUVOM_PROMETHEUS__TOKEN."),
    ) -> None:
        """Serve /metrics until Ctrl-C: job counters of every process of this project, depth and workers from the store."""
        from nuvom_metrics_prometheus.plugin import options_of, serve

        app_ = cli.app()
        options = options_of(app_)
        token = options.token.get_secret_value() if options.token else None
        bind = host or options.host
        chosen = port if port is not None else options.port if options.port is not None else DEFAULT_PORT
        try:
            server = serve(app_, bind, chosen, token)
        except ValueError as exc:  # off loopback without a token
            cli.fail(str(exc), cli.EXIT_USAGE)
        except OSError as exc:
            cli.fail(f"cannot serve metrics on {bind}:{chosen}: {exc}; choose another --port", cli.EXIT_USAGE)
        cli.say(f"[green]metrics[/] at {server.url}", f"metrics at {server.url}", "metrics.serving", url=server.url)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

    @metrics.command("show")
    def show_cmd() -> None:
        """Print one scrape (the text Prometheus would read) and exit."""
        from prometheus_client.exposition import generate_latest

        from nuvom_metrics_prometheus.collector import make_registry
        from nuvom_metrics_prometheus.plugin import metrics_dir

        app_ = cli.app()
        sys.stdout.write(generate_latest(make_registry(app_, metrics_dir(app_.root))).decode())

    app.add_typer(metrics, name="metrics")


#: ``nuvom metrics serve``'s port when none is configured
DEFAULT_PORT = 9150
