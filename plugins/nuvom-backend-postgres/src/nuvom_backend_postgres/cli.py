"""``nuvom postgres migrate | status | copy-jobs``.

Attached by the plugin's ``nuvom_register_commands`` hook each time the CLI
is built; nothing is attached at import time.  The connection string comes
from the ``postgres`` settings section and is never printed.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from nuvom_kernel.components import CommandContext
from nuvom_kernel.errors import NuvomError


class _Commands:
    """The commands, bound to the invocation's :class:`CommandContext`."""

    def __init__(self, cli: CommandContext) -> None:
        self.cli = cli

    def _app(self) -> Any:
        return self.cli.app()  # a bad setting exits 2

    def _backend(self, app: Any) -> Any:
        from nuvom_backend_postgres.plugin import backend_from, options_model

        resolved = app.plugin_settings.get("postgres")
        try:
            return backend_from(options_model(resolved.values if resolved is not None else {}))
        except NuvomError as exc:
            self.cli.fail(str(exc), self.cli.EXIT_USAGE)

    def migrate(
        self,
        show: bool = typer.Option(False, "--show", help="Only list applied and pending migrations."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Create or upgrade Nuvom's tables (safe while workers start: an advisory lock serialises it)."""
        import psycopg

        from nuvom_backend_postgres import schema as pg_schema

        backend = self._backend(self._app())
        try:
            with backend.db.connect() as conn:
                applied = pg_schema.applied_versions(conn, backend.schema) or {}
                ran = [] if show else pg_schema.migrate(conn, backend.schema)
                if ran:
                    applied = pg_schema.applied_versions(conn, backend.schema) or {}
        except psycopg.Error as exc:
            self.cli.fail(f"PostgreSQL at {backend.db.where}: {type(exc).__name__}: {exc}")
        except NuvomError as exc:
            self.cli.fail(str(exc))
        rows = [{"version": m.version, "name": m.name, "applied_at": applied.get(m.version), "ran_now": m.version in ran}
                for m in pg_schema.MIGRATIONS]
        if as_json:
            print(json.dumps({"where": backend.db.where, "schema": backend.schema, "migrations": rows}))
            return
        console = Console()
        console.print(f"{backend.db.where} schema {backend.schema}", highlight=False)
        for row in rows:
            state = "applied now" if row["ran_now"] else (f"applied {row['applied_at']}" if row["applied_at"] else "pending")
            console.print(f"  {row['version']:>3}  {row['name']}: {state}", highlight=False)

    def status(self, as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
        """Where the backend points (no password), its schema version and job counts."""
        import psycopg

        backend = self._backend(self._app())
        try:
            counts = backend.counts()
            from nuvom_backend_postgres import schema as pg_schema

            with backend.db.connect() as conn:
                applied = pg_schema.applied_versions(conn, backend.schema) or {}
                hot, done = conn.execute(backend.q("SELECT (SELECT count(*) FROM {s}.jobs), (SELECT count(*) FROM {s}.jobs_done)")).fetchone() or (0, 0)
        except psycopg.Error as exc:
            self.cli.fail(f"PostgreSQL at {backend.db.where}: {type(exc).__name__}: {exc}")
        except NuvomError as exc:
            self.cli.fail(str(exc))
        finally:
            backend.close()
        report = {"where": backend.db.where, "schema": backend.schema, "version": max(applied, default=0),
                  "wakeups": backend.wakeups, "hot_rows": hot, "history_rows": done, "counts": counts}
        if as_json:
            print(json.dumps(report))
            return
        console = Console()
        for key, value in report.items():
            console.print(f"{key}: {value}", highlight=False)

    def copy_jobs(
        self,
        source: str = typer.Option(..., "--from", help="The backend to copy from (its settings as configured), e.g. sqlite."),
        move: bool = typer.Option(False, "--move", help="Cancel each copied job in the source (reason: moved to postgres)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Copy queued and scheduled jobs from another backend (same ids: running it twice copies nothing twice).

        Stop the workers of the source first: a job they claim meanwhile would run on both."""
        from nuvom_kernel.contracts import JobFilter
        from nuvom_kernel.models import JobState

        app = self._app()
        try:
            src = app.plugins.registries["queue_backends"].create(source, app.settings, app.component_options)
        except NuvomError as exc:
            self.cli.fail(str(exc), self.cli.EXIT_USAGE)
        if not hasattr(src, "query_jobs"):
            self.cli.fail(f"the {source!r} backend cannot list its jobs (no job store role): nothing to copy from", self.cli.EXIT_USAGE)
        dst = self._backend(app)
        copied = moved = 0
        try:
            wanted = JobFilter(states=frozenset({JobState.QUEUED, JobState.SCHEDULED}))
            cursor = None
            while True:
                page = src.query_jobs(wanted, limit=500, cursor=cursor)
                if page.jobs:
                    copies = [job.model_copy(deep=True) for job in page.jobs]
                    stored = dst.enqueue_many(copies)
                    copied += sum(1 for mine, got in zip(copies, stored) if got is mine)  # not stored before
                    if move:
                        for job in page.jobs:
                            if src.cancel(job.id, "moved to postgres") is not None:
                                moved += 1
                if page.cursor is None:
                    break
                cursor = page.cursor
        except NuvomError as exc:
            self.cli.fail(str(exc))
        finally:
            dst.close()
            if hasattr(src, "close"):
                src.close()
        if as_json:
            print(json.dumps({"copied": copied, "cancelled_in_source": moved}))
        else:
            Console().print(f"copied {copied} job(s) from {source} to postgres"
                            + (f"; cancelled {moved} in {source}" if move else ""), highlight=False)


def register_commands(app: typer.Typer, cli: CommandContext) -> None:
    """Add the ``postgres`` group to ``app`` (failing through ``cli``'s exit codes)."""
    commands = _Commands(cli)
    group = typer.Typer(help="The PostgreSQL backend: migrations, status, moving jobs over.", no_args_is_help=True)
    group.command("migrate")(commands.migrate)
    group.command("status")(commands.status)
    group.command("copy-jobs")(commands.copy_jobs)
    app.add_typer(group, name="postgres")
