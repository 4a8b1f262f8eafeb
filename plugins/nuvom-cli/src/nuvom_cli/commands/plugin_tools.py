"""``nuvom plugin test`` and ``nuvom plugin scaffold``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from nuvom_cli.state import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, state
from nuvom_cli.tables import fit


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that parses as JSON is used as such."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            state().fail(f"--option {pair!r}: expected KEY=VALUE, e.g. --option url=redis://localhost", EXIT_USAGE)
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    return options


def plugin_test(target: str, as_json: bool, option: list[str], contracts: bool, timeout: float) -> int:
    from nuvom_cli.commands.plugin_checks import CheckResult, run_checks
    from nuvom_cli.commands.plugin_contracts import SUITES, run_contracts
    from nuvom_cli.commands.plugin_target import TargetNotFoundError, load_target, resolve_target

    st = state()
    options = _parse_options(option)
    try:
        resolved = resolve_target(target, Path.cwd(), st.plugins.root)
    except TargetNotFoundError as exc:
        if as_json:
            st.print_json({"target": target, "ok": False, "error": str(exc), "plugins": []})
            return EXIT_USAGE
        st.fail(str(exc), EXIT_USAGE)
    pm, records = load_target(resolved)
    report: list[dict[str, Any]] = []
    for record in records:
        rows, provides = run_checks(pm, record, options)
        components = [(kind, name) for kind in SUITES for name in provides.get(kind, [])]
        if contracts and components:
            if importlib.util.find_spec("pytest") is None:
                rows += [CheckResult(f"contract: {SUITES[k].label} {n!r}", False,
                                     "the contract suites need pytest: pip install pytest") for k, n in components]
            else:
                rows += run_contracts(resolved, components, options, timeout)
        report.append({"name": record.name, "version": record.version, "origin": record.origin,
                       "provides": provides, "checks": rows})
    ok = all(row.ok for plugin in report for row in plugin["checks"])
    if as_json:
        st.print_json({"target": target, "kind": resolved.kind, "ok": ok, "plugins": [
            {**p, "checks": [row.as_dict() for row in p["checks"]]} for p in report]})
        return EXIT_OK if ok else EXIT_FAILURE
    several = len(report) > 1
    table = Table(title=f"nuvom plugin test {target}" + ("" if several else f" ({report[0]['name']})"))
    for col in (("Plugin",) if several else ()) + ("Check", "Result", "Detail"):
        table.add_column(col, no_wrap=col == "Check")  # a check's name is a label: kept on one line
    failures: list[tuple[str, dict[str, str]]] = []
    for plugin in report:
        for row in plugin["checks"]:
            result = Text("pass", style="green") if row.ok else Text("FAIL", style="bold red")
            cells = [Text(row.name), result, Text(row.detail)]
            table.add_row(*([Text(plugin["name"])] if several else []), *cells)
            failures += [(row.name, f) for f in row.failures]
    st.console.print(fit(table))
    for check, failure in failures:
        st.console.print(Text(f"{check} :: {failure['test']}: {failure['message']}", style="red"))
    total = sum(len(p["checks"]) for p in report)
    failed = sum(1 for p in report for row in p["checks"] if not row.ok)
    if ok:
        st.console.print(Text(f"all {total} checks passed", style="bold green"))
        return EXIT_OK
    st.console.print(Text(f"{failed} of {total} checks failed", style="bold red"))
    return EXIT_FAILURE


def register(plugin_app: typer.Typer) -> None:
    @plugin_app.command("test")
    def test(
        target: str = typer.Argument(..., help="Installed distribution or entry-point name, dotted module, or .py file."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
        option: list[str] = typer.Option(
            [], "--option", "-o", metavar="KEY=VALUE",
            help="A plugin option passed to its factories (JSON values allowed); repeatable."),
        contracts: bool = typer.Option(True, "--contracts/--no-contracts",
                                       help="Run the contract suites against registered components."),
        timeout: float = typer.Option(600.0, "--timeout", help="Seconds the contract suites may take."),
    ) -> None:
        """Load one plugin alone, check its hooks, and run the contract suites against its components."""
        raise typer.Exit(plugin_test(target, as_json, option, contracts, timeout))

    @plugin_app.command("scaffold")
    def scaffold(
        name: str = typer.Argument(..., help="Short name: `redis` renders nuvom-redis/ with package nuvom_redis."),
        kind: str = typer.Option(
            None, "--kind", "-k", "--capability", "-c",
            help="queue-backend, result-backend, executor, discoverer, commands or lifecycle."),
        out: Path = typer.Option(Path("."), "--out", "-o", help="Directory to create the project in."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing project directory."),
        author: str = typer.Option("Your Name", "--author", help="Author written to pyproject.toml."),
        template: str = typer.Option(None, "--template", help="Another cookiecutter template (path or git URL) instead of the built-in one."),
    ) -> None:
        """Render a new plugin project from the built-in template (needs nuvom-cli[scaffold])."""
        from nuvom_cli.commands.plugin_scaffold import ScaffoldError, render

        st = state()
        try:
            project = render(name, kind, Path(out), force=force, author=author, template=template)
        except ScaffoldError as exc:
            st.fail(str(exc), EXIT_USAGE)
        st.console.print(Text(f"created {project}", style="green"))
        st.console.print(Text(f"next: pip install -e '{project}[test]' && pytest {project / 'tests'} "
                              f"&& nuvom plugin test {project.name}"))
