"""``nuvom runscheduler`` and ``nuvom schedules list|show|pause|resume|cancel|purge``.

Attached by the ``nuvom_register_commands`` hook each time the CLI is built;
they fail through the invocation's ``CommandContext`` with the exit codes
every ``nuvom`` command uses.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from nuvom_kernel.components import CommandContext
from nuvom_kernel.errors import NuvomError
from nuvom_kernel.schedules import ScheduleState
from nuvom_scheduler.loop import describe, when_text
from nuvom_scheduler.timing import display_zone as zone
from nuvom_support.schedules import ScheduleNotFoundError, get_schedule, schedule_store, set_state


class _Commands:
    """The commands, bound to the invocation's :class:`CommandContext`."""

    def __init__(self, cli: CommandContext) -> None:
        self.cli = cli

    def runscheduler(
        self,
        poll: float = typer.Option(None, "--poll", "-p", min=0.001, help="Seconds between checks for due schedules (default 1, NUVOM_SCHEDULER__POLL_SECS)."),
        batch: int = typer.Option(None, "--batch", "-b", min=1, help="Schedules fired per check at most (default 100)."),
        jitter: float = typer.Option(None, "--jitter", "-j", min=0.0, help="Random extra wait (0..this seconds) between checks, to spread replicas."),
        tasks: list[str] = typer.Option([], "--tasks", "-t", help="Module or .py file whose @task(cron=...)/interval= declarations to store (the manifest is read too)."),
        once: bool = typer.Option(False, "--once", help="Fire what is due now, then exit."),
    ) -> None:
        """Run the scheduler loop in the foreground until Ctrl-C (workers run it too unless --no-scheduler)."""

        from nuvom_scheduler.plugin import make_loop
        from nuvom_support.loader import import_task_modules

        st = self.cli
        app = st.app()
        for problem in import_task_modules([t for item in tasks for t in item.split(",") if t.strip()], app.root):
            st.fail(f"could not import task module {problem.module}: {problem.error}", st.EXIT_USAGE)
        try:
            schedule_store(app)
            loop = make_loop(app, poll=poll, batch=batch, jitter=jitter)
        except (NuvomError, ValueError) as exc:
            _guard(st, exc)
        if st.process_local_backend(app):
            st.say("[bold yellow]warning:[/] the memory backend keeps schedules inside this process; use sqlite or file",
                   "the memory backend keeps schedules inside this process; use sqlite or file", "cli.warning", logging.WARNING)
        if once:
            loop.sync_periodic()
            fired = loop.run_once()
            st.say(f"fired {fired} job(s)", f"fired {fired} job(s)", "scheduler.once", fired=fired)
            return
        st.say(f"[green]scheduler[/] on {escape(app.settings.queue_backend)}: poll {loop.poll:g}s, batch {loop.batch}, "
               f"jitter {loop.jitter:g}s", f"scheduler on {app.settings.queue_backend}", "scheduler.starting")
        _stop_on_signals(loop)
        loop.run()

    def list_schedules(
        self,
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
        state_filter: list[str] = typer.Option([], "--state", "-s", help="Only schedules in this state (active, paused, done, cancelled); repeatable."),
    ) -> None:
        """Every schedule with its next fire time in the schedule's own time zone."""
        st = self.cli
        try:
            wanted = {ScheduleState(s.lower()) for s in state_filter}
            schedules = schedule_store(st.app()).list_schedules()
        except ValueError:
            _guard(st, ValueError(f"--state {', '.join(state_filter)}: use active, paused, done or cancelled"))
        except NuvomError as exc:
            _guard(st, exc)
        schedules = [s for s in schedules if not wanted or s.state in wanted]
        if as_json:
            st.print_json([describe(s) for s in schedules])
            return
        if not schedules:
            st.console.print("no schedules")
            return
        table = Table("id", "task", "when", "state", "next fire", "last fire", "fired")
        for s in schedules:
            table.add_row(escape(s.id), escape(s.task), escape(when_text(s)), s.state.value,
                          _local(s.next_fire_at, s.timezone), _local(s.last_fire_at, s.timezone), str(s.fire_count))
        from nuvom_cli.tables import fit

        st.console.print(fit(table))

    def show_schedule(
        self,
        schedule_id: str = typer.Argument(..., help="The schedule's id (`nuvom schedules list`)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """One schedule in full."""
        st = self.cli
        try:
            s = get_schedule(st.app(), schedule_id)
        except (NuvomError, ValueError) as exc:
            _guard(st, exc)
        data = describe(s)
        if as_json:
            st.print_json(data)
            return
        rows = [("id", s.id), ("task", s.task), ("when", when_text(s)), ("state", s.state.value),
                ("next fire", _local(s.next_fire_at, s.timezone)), ("last fire", _local(s.last_fire_at, s.timezone)),
                ("args", repr(s.args)), ("kwargs", repr(s.kwargs)), ("origin", s.origin),
                ("fired / missed / coalesced", f"{s.fire_count} / {s.missed_count} / {s.coalesced_count}"),
                ("misfire grace", "default" if s.misfire_grace_secs is None else f"{s.misfire_grace_secs:g}s"),
                ("coalesce", s.coalesce or "default"), ("catch-up limit", str(s.catch_up_limit or "default")),
                ("jitter", f"{s.jitter_secs:g}s"), ("job options", repr(s.options))]
        table = Table(show_header=False)
        for key, value in rows:
            table.add_row(key, escape(str(value)))
        st.console.print(table)

    def _change(self, schedule_id: str, state: ScheduleState, as_json: bool, verb: str) -> None:
        st = self.cli
        try:
            s = set_state(st.app(), schedule_id, state)
        except (NuvomError, ValueError) as exc:
            _guard(st, exc)
        if as_json:
            st.print_json(describe(s))
        else:
            st.console.print(f"{verb} schedule {escape(s.id)}; next fire {_local(s.next_fire_at, s.timezone)}"
                             if state == ScheduleState.ACTIVE else f"{verb} schedule {escape(s.id)}")

    def pause_schedule(self, schedule_id: str = typer.Argument(..., help="The schedule's id."),
                       as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
        """Stop firing until resumed (occurrences meanwhile are missed, as after an outage)."""
        self._change(schedule_id, ScheduleState.PAUSED, as_json, "paused")

    def resume_schedule(self, schedule_id: str = typer.Argument(..., help="The schedule's id."),
                        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
        """Fire again from the next occurrence (those within the grace period fire at once)."""
        self._change(schedule_id, ScheduleState.ACTIVE, as_json, "resumed")

    def cancel_schedule(self, schedule_id: str = typer.Argument(..., help="The schedule's id."),
                        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
        """Never fire again (kept, shown as cancelled)."""
        self._change(schedule_id, ScheduleState.CANCELLED, as_json, "cancelled")

    def purge_schedules(
        self,
        states: list[str] = typer.Option([], "--state", "-s", help="Ended state to delete (repeatable): done, cancelled. Default: both."),
        older_than: str = typer.Option(None, "--older-than", help="Only schedules that ended longer ago than this: 12h, 7d, 4w."),
        include_code: bool = typer.Option(False, "--include-code", help="Also cancelled @task(cron=...) schedules (the next scheduler stores the periodic task again if the code still declares it)."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts (needs --yes)."),
    ) -> None:
        """Delete done and cancelled schedules; never active or paused ones."""

        from nuvom import sdk
        from nuvom_support.schedules import purge_states

        st = self.cli
        try:
            wanted = purge_states([s.lower() for s in states]) if states else None
            if older_than is not None:
                sdk.parse_duration(older_than)
        except ValueError as exc:
            message = str(exc)
            if "is not a valid ScheduleState" in message:
                message = f"--state {', '.join(states)}: use done or cancelled"
            st.fail(message, st.EXIT_USAGE)
        if as_json and not yes:
            st.fail("--json needs --yes (there is no one to answer the prompt)", st.EXIT_USAGE)
        app = st.app()
        names = " and ".join(sorted(s.value for s in wanted)) if wanted else "done and cancelled"
        what = f"{names} schedules" + (f" that ended more than {older_than} ago" if older_than else "")
        if not yes and not typer.confirm(f"Delete {what} from the {app.settings.queue_backend} backend?"):
            st.err.print("nothing deleted")
            raise typer.Exit(st.EXIT_OK)
        try:
            deleted = sdk.purge_schedules(state=wanted, older_than=older_than, include_code=include_code, app=app)
        except (NuvomError, ValueError) as exc:
            _guard(st, exc)
        if as_json:
            st.print_json({"deleted": deleted})
        else:
            st.console.print(f"deleted {deleted} schedule(s)")


def register_commands(app: typer.Typer, cli: CommandContext) -> None:
    commands = _Commands(cli)
    app.command("runscheduler")(commands.runscheduler)
    group = typer.Typer(help="List and manage schedules (task.schedule, @task(cron=...)).", no_args_is_help=True)
    group.command("list")(commands.list_schedules)
    group.command("show")(commands.show_schedule)
    group.command("pause")(commands.pause_schedule)
    group.command("resume")(commands.resume_schedule)
    group.command("cancel")(commands.cancel_schedule)
    group.command("purge")(commands.purge_schedules)
    app.add_typer(group, name="schedules")


def _guard(st: CommandContext, exc: NuvomError | ValueError) -> NoReturn:
    if isinstance(exc, ScheduleNotFoundError):
        st.fail(str(exc), st.EXIT_NOT_FOUND)
    if isinstance(exc, ValueError):
        st.fail(str(exc), st.EXIT_USAGE)
    st.guard(exc)


def _stop_on_signals(loop: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        loop._stop.set()

    signal.signal(signal.SIGINT, handler)
    for name in ("SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def _local(ts: float | None, zone_name: str) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S %Z")


