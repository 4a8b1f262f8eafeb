"""``nuvom discover tasks`` and ``nuvom list tasks``.

Commands are attached by :func:`register_commands`, called from the
``nuvom_register_commands`` hook each time the CLI is built; nothing is
attached at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from nuvom_kernel.components import CommandContext
from nuvom_kernel.errors import NuvomError
from nuvom_kernel.settings import LoadedSettings, load_settings
from nuvom_support.manifest import (
    Manifest,
    ManifestDiff,
    default_manifest_path,
    load_manifest,
    refresh_manifest,
)

#: Trees with more Python files than this get a progress bar.
PROGRESS_THRESHOLD = 500


def register_commands(app: typer.Typer, cli: CommandContext) -> None:
    """Add the ``discover`` and ``list`` groups to ``app``; they fail through
    ``cli`` with the exit codes every ``nuvom`` command uses."""
    commands = _Commands(cli)
    discover_app = typer.Typer(help="Find tasks by reading the source, without importing it.", no_args_is_help=True)
    discover_app.command("tasks")(commands.discover_tasks)
    app.add_typer(discover_app, name="discover")
    list_app = typer.Typer(help="List what Nuvom knows.", no_args_is_help=True)
    list_app.command("tasks")(commands.list_tasks)
    app.add_typer(list_app, name="list")


def _fit(table: Table) -> Any:
    """The table fitted to the terminal without cutting words (nuvom-cli's ``fit``;
    these commands run inside the ``nuvom`` command, so it is installed)."""
    try:
        from nuvom_cli.tables import fit
    except ImportError:  # pragma: no cover - only reachable when embedded without nuvom-cli
        return table
    return fit(table)


class _Commands:
    """The commands, bound to the invocation's :class:`CommandContext`."""

    def __init__(self, cli: CommandContext) -> None:
        self.cli = cli

    def _settings(self) -> LoadedSettings:
        try:
            return load_settings()
        except NuvomError as exc:
            self.cli.guard(exc)

    def discover_tasks(
        self,
        root: Annotated[Optional[Path], typer.Option("--root", help="Directory to scan (default: the project root).")] = None,  # noqa: UP045 - typer reads the annotation at runtime on 3.10
        include: Annotated[Optional[list[str]], typer.Option("--include", help="Only scan files matching this glob (gitignore syntax); repeatable.")] = None,  # noqa: UP045
        exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="Skip paths matching this glob (gitignore syntax); repeatable.")] = None,  # noqa: UP045
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Scan the project for @task functions and update the task manifest."""
        loaded = self._settings()
        scan_root = (root if root is not None else loaded.root).resolve()
        if not scan_root.is_dir():
            self.cli.fail(f"the root {str(scan_root)!r} does not exist or is not a directory; pass an existing directory with --root",
                          self.cli.EXIT_USAGE)
        manifest_path = default_manifest_path(loaded.settings, loaded.root)
        console = Console()
        bar = _ProgressBar(Console(stderr=True), PROGRESS_THRESHOLD if not as_json else 1 << 62)
        discoverer = _discoverer(loaded)
        if hasattr(discoverer, "progress"):
            discoverer.progress = bar
        try:
            diff = refresh_manifest(discoverer, scan_root, manifest_path, include or [], exclude or [], project=loaded.root)
        except NuvomError as exc:
            self.cli.guard(exc)
        finally:
            bar.close()
        if as_json:
            typer.echo(json.dumps(diff.to_dict(), indent=2))
            return
        _print_diff(console, diff)

    def list_tasks(
        self,
        as_json: Annotated[bool, typer.Option("--json", help="Print the tasks as JSON.")] = False,
    ) -> None:
        """List the tasks recorded in the task manifest (no scan, no import)."""
        loaded = self._settings()
        manifest_path = default_manifest_path(loaded.settings, loaded.root)
        try:
            manifest = load_manifest(manifest_path, loaded.root)
        except NuvomError as exc:
            self.cli.guard(exc)
        if manifest is None:
            self.cli.fail(f"no task manifest at {manifest_path} yet: run 'nuvom discover tasks' first",
                          self.cli.EXIT_NOT_FOUND)
        if as_json:
            typer.echo(json.dumps([t.model_dump(mode="json") for t in manifest.tasks], indent=2))
            return
        _print_tasks(Console(), manifest)


class _ProgressBar:
    """A Rich progress bar, shown only for trees larger than the threshold."""

    def __init__(self, console: Console, threshold: int) -> None:
        self.console = console
        self.threshold = threshold
        self.progress: Progress | None = None
        self.task_id: Any = None

    def __call__(self, done: int, total: int) -> None:
        if done == 0:
            if total > self.threshold and self.progress is None:
                self.progress = Progress(
                    TextColumn("Scanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=self.console, transient=True,
                )
                self.progress.start()
                self.task_id = self.progress.add_task("scan", total=total)
        elif self.progress is not None:
            self.progress.update(self.task_id, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _discoverer(loaded: LoadedSettings) -> Any:
    """The discoverer selected through the registry (``ast`` when installed)."""
    from nuvom_kernel.app import Nuvom
    from nuvom_support.loader import pick_discoverer

    found = pick_discoverer(Nuvom(loaded.settings, root=loaded.root))
    if found is not None:
        return found
    from nuvom_discovery_ast.discoverer import AstDiscoverer  # the parser only when a scan runs

    return AstDiscoverer()


def _print_diff(console: Console, diff: ManifestDiff) -> None:
    if diff.changed:
        table = Table(title="Task changes", title_justify="left")
        for column in ("", "Task", "Module", "Location", "Change"):
            table.add_column(column)
        for t in diff.added:
            table.add_row("[green]+[/]", *_plain(t.name, t.module, t.location()), "added")
        for t in diff.removed:
            table.add_row("[red]-[/]", *_plain(t.name, t.module, t.location()), "removed")
        for m in diff.modified:
            table.add_row("[yellow]~[/]", *_plain(m.after.name, m.after.module, m.after.location()), ", ".join(m.changed) + " changed")
        console.print(_fit(table))
    else:
        console.print("No task changes.")
    if diff.problems:
        problems = Table(title=f"Problems ({len(diff.problems)})", title_justify="left")
        for column in ("Kind", "Location", "Problem"):
            problems.add_column(column)
        for p in diff.problems:
            where = f"{p.get('path')}:{p['line']}" if p.get("line") else str(p.get("path"))
            problems.add_row(*_plain(str(p.get("kind")), where, str(p.get("message"))))
        console.print(_fit(problems))
    state = "written" if diff.written else "unchanged"
    console.print(
        f"{len(diff.manifest.tasks)} task(s); {diff.files_scanned} file(s) scanned, "
        f"{diff.files_parsed} parsed; manifest {state}: {escape(str(diff.path))}",
        highlight=False, soft_wrap=True,
    )


def _plain(*values: str) -> list[Text]:
    """Cells shown as written: task names and messages are never Rich markup."""
    return [Text(v) for v in values]


def _option(options: dict[str, Any], key: str) -> str:
    value = options.get(key)
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _print_tasks(console: Console, manifest: Manifest) -> None:
    if not manifest.tasks:
        console.print("No tasks in the manifest. Decorate functions with @task, then run 'nuvom discover tasks'.")
    else:
        table = Table(title=f"Tasks ({len(manifest.tasks)})", title_justify="left")
        for column in ("Name", "Module", "Location", "Tags", "Description", "Queue", "Retries", "Timeout"):
            table.add_column(column)
        for t in manifest.tasks:
            o = t.options
            table.add_row(*_plain(
                t.name + (" (async)" if t.is_async else ""), t.module, t.location(), _option(o, "tags"),
                _option(o, "description"), _option(o, "queue"), _option(o, "retries"), _option(o, "timeout_secs"),
            ))
        console.print(_fit(table))
    if manifest.problems:
        console.print(
            f"{len(manifest.problems)} problem(s) were found by the last discovery; "
            "run 'nuvom discover tasks' to see them.",
            highlight=False, soft_wrap=True,
        )
