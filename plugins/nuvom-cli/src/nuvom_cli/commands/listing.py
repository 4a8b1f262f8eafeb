"""``nuvom history`` (and 0.11's ``history recent``) and ``nuvom stats``."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from nuvom import sdk
from nuvom_cli.commands.jobview import ago, checked_id, compact_time, for_display, short, state_text
from nuvom_cli.state import EXIT_USAGE, CliState, state
from nuvom_cli.tables import fit
from nuvom_kernel.errors import NuvomError
from nuvom_kernel.models import Job, JobState


def _history(st: CliState, states: list[str], task: str | None, queue: str | None, since: str | None,
             limit: int, offset: int, as_json: bool, search: str | None = None, cursor: str | None = None) -> None:
    if queue is not None:
        checked_id(st, queue, "queue name")
    next_cursor: str | None = None
    try:
        if offset:  # 0.11's paging: walks the keyset pages up to the offset
            jobs = sdk.list_jobs(state=states or None, task=task, queue=queue, since=since, limit=limit,
                                 offset=offset, app=st.app())
        else:
            page = sdk.query_jobs(state=states or None, task=task, queue=queue, since=since, search=search,
                                  limit=limit or 2**31 - 1, cursor=cursor, app=st.app())
            jobs, next_cursor = page.jobs, page.cursor
        jobs = [for_display(st.app(), j) for j in jobs]
    except ValueError as exc:
        st.fail(str(exc), EXIT_USAGE)
    except NuvomError as exc:
        st.guard(exc)
    if as_json:
        st.print_json([_row(j) for j in jobs])
        if next_cursor is not None:
            st.err.print(f"more: add --cursor {next_cursor}", markup=False)
        return
    table = Table(title=f"Jobs, newest first, times in UTC ({len(jobs)} shown)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Job ID", no_wrap=True)
    table.add_column("State")
    table.add_column("Task", overflow="fold", min_width=6)
    table.add_column("Created", min_width=8)
    table.add_column("Result / error", overflow="fold", min_width=12)
    for j in jobs:
        err = j.last_error
        outcome = (short(j.result) if j.state == JobState.SUCCEEDED
                   else f"{err.type.removeprefix('builtins.')}: {short(err.message, 50)}" if err else (j.reason or "-"))
        table.add_row(j.id, Text.assemble(state_text(j.state), f" {j.attempts}/{j.max_attempts}"), Text(j.task),
                      compact_time(j.created_at), Text(outcome))
    st.console.print(fit(table))
    if next_cursor is not None:
        st.err.print(f"more: add --cursor {next_cursor}", markup=False)
    elif offset and len(jobs) == limit and limit:
        st.err.print(f"more may exist: add --offset {offset + limit}", markup=False)


def _row(job: Job) -> dict[str, Any]:
    err = job.last_error
    return {"id": job.id, "task": job.task, "state": job.state.value, "queue": job.queue,
            "attempts": job.attempts, "created_at": job.created_at, "finished_at": job.finished_at,
            "result": job.result if job.state == JobState.SUCCEEDED else None,
            "error": None if err is None else {"type": err.type, "message": err.message}, "reason": job.reason}


_STATE_HELP = "State to show (repeatable): queued, scheduled, running, succeeded, failed, cancelled, dead; 0.11's SUCCESS, FAILED, PENDING too."


def register(app: typer.Typer) -> None:
    history_app = typer.Typer(help="Jobs newest first, filtered and paginated.", invoke_without_command=True)

    @history_app.callback()
    def history(
        ctx: typer.Context,
        states: list[str] = typer.Option([], "--state", "--status", "-s", help=_STATE_HELP),
        task: str = typer.Option(None, "--task", "-t", help="Only jobs of this task."),
        queue: str = typer.Option(None, "--queue", "-q", help="Only jobs of this queue."),
        since: str = typer.Option(None, "--since", help="Created within a duration (30m, 1h, 7d) or after an ISO time."),
        limit: int = typer.Option(20, "--limit", "-n", min=0, help="Jobs per page; 0 means all."),
        search: str = typer.Option(None, "--search", help="Only jobs whose id or task name contains this text."),
        cursor: str = typer.Option(None, "--cursor", help="Start after this position (printed after each page)."),
        offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (0.11's paging; --cursor is cheaper)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Jobs newest first, filtered and paginated."""
        if ctx.invoked_subcommand is None:
            _history(state(), states, task, queue, since, limit, offset, as_json, search, cursor)

    @history_app.command("recent")
    def recent(
        states: list[str] = typer.Option([], "--status", "--state", "-s", help=_STATE_HELP),
        task: str = typer.Option(None, "--task", "-t", help="Only jobs of this task."),
        queue: str = typer.Option(None, "--queue", "-q", help="Only jobs of this queue."),
        since: str = typer.Option(None, "--since", help="Created within a duration (30m, 1h, 7d) or after an ISO time."),
        limit: int = typer.Option(20, "--limit", "-n", min=0, help="Jobs per page; 0 means all."),
        offset: int = typer.Option(0, "--offset", min=0, help="Skip this many."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Nuvom 0.11's spelling of `nuvom history` (`--status SUCCESS|FAILED|PENDING`)."""
        _history(state(), states, task, queue, since, limit, offset, as_json)

    app.add_typer(history_app, name="history")

    @app.command("stats")
    def stats(
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
        watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C."),
        interval: float = typer.Option(2.0, "--interval", min=0.1, help="Seconds between refreshes with --watch."),
        iterations: int = typer.Option(0, "--iterations", min=0, hidden=True, help="Stop --watch after N refreshes."),
    ) -> None:
        """Jobs per state and queue, oldest queued age, workers and heartbeats, throughput."""
        st = state()

        def snapshot() -> dict[str, Any]:
            try:
                return sdk.stats(app=st.app())
            except NuvomError as exc:
                st.guard(exc)

        if not watch:
            data = snapshot()
            if as_json:
                st.print_json(data)
            else:
                st.console.print(stats_view(data))
            return
        count = 0
        try:
            with Live(console=st.console, auto_refresh=False, transient=False) as live:
                while True:
                    data = snapshot()
                    count += 1
                    if as_json:
                        st.print_json(data)
                    else:
                        live.update(stats_view(data), refresh=True)
                    if iterations and count >= iterations:
                        break
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass


def stats_view(data: dict[str, Any]) -> Group:
    """The Rich rendering of :func:`nuvom.sdk.stats`."""
    states = [s.value for s in JobState]
    per_queue = Table(title=f"Jobs on {data['backend']} ({data['total']} in all)", title_justify="left")
    per_queue.add_column("Queue")
    for name in states:
        per_queue.add_column(name, justify="right")
    for queue, counts in sorted(data["queues"].items()):
        per_queue.add_row(queue, *[str(counts.get(s, 0)) for s in states])
    per_queue.add_row(Text("all", style="bold"), *[Text(str(data["states"].get(s, 0)), style="bold") for s in states])
    oldest = data["oldest_queued_age_secs"]
    tp = data["throughput"]
    summary = Text(
        f"oldest queued job waiting: {'-' if oldest is None else ago(oldest)}   "
        f"throughput: {tp['finished']} finished in the last {tp['window_secs']:.0f}s "
        f"({tp['per_sec']:.2f}/s{'' if tp['exact'] else ', lower bound'})"
    )
    workers = Table(title=f"Workers (stale when the last heartbeat is older than {data['stale_after_secs']:g}s)",
                    title_justify="left")
    for col in ("Worker", "Host / PID", "Queues", "Executor", "Status", "Heartbeat", "Jobs done"):
        workers.add_column(col, overflow="fold")
    hidden = 0
    for w in data["workers"]:
        if w["status"] == "stopped" and w["heartbeat_age_secs"] > 3600:
            hidden += 1
            continue
        style = {"running": "green", "stopping": "yellow", "stale": "bold red", "stopped": "dim"}.get(w["status"], "")
        workers.add_row(w["id"], f"{w['host']} / {w['pid']}", ",".join(w["queues"]),
                        f"{w['executor']} x{w['concurrency']}", Text(w["status"], style=style),
                        f"{ago(w['heartbeat_age_secs'])} ago", str(w["jobs_done"]))
    parts: list[Any] = [fit(per_queue), summary, fit(workers)]
    if hidden:
        parts.append(Text(f"({hidden} worker(s) stopped more than an hour ago not shown; --json lists them)"))
    return Group(*parts)
