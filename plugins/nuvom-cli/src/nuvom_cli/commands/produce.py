"""``nuvom enqueue`` (by task name, without importing it) and ``nuvom purge``."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.text import Text

from nuvom import sdk
from nuvom_cli.commands.jobview import checked_id, when
from nuvom_cli.state import EXIT_OK, EXIT_USAGE, state
from nuvom_kernel.errors import InvalidStateError, NuvomError
from nuvom_kernel.models import JobState


def parse_arg(text: str) -> Any:
    """A command-line argument as JSON when it parses (``3``, ``true``, ``[1,2]``,
    ``"x"``), else the string itself (``hello``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def register(app: typer.Typer) -> None:
    @app.command("enqueue")
    def enqueue(
        task: str = typer.Argument(..., help="The task's name (as in `nuvom list tasks`)."),
        args: list[str] = typer.Argument(None, help="Positional arguments; each is JSON if it parses, else a string."),
        kwargs: str = typer.Option(None, "--kwargs", "-k", help='Keyword arguments as a JSON object: \'{"to": "a@b.c"}\'.'),
        eta: str = typer.Option(None, "--eta", help="Run at an ISO time (no zone = UTC) or after a delay: +30s, +5m."),
        queue: str = typer.Option(None, "--queue", "-q", help="Queue (default: the task's, else `default`)."),
        priority: int = typer.Option(None, "--priority", "-p", help="Higher runs first (default: the task's, else 0)."),
        retries: int = typer.Option(None, "--retries", min=0, help="Retries (default: the task's, else NUVOM_MAX_RETRIES)."),
        unique_key: str = typer.Option(None, "--unique-key", help="Return the live job with this key instead of adding one."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Enqueue a job by task name without importing the task; prints the job id."""
        st = state()
        if queue is not None:
            checked_id(st, queue, "queue name")
        values = [parse_arg(a) for a in args or []]
        extra: dict[str, Any] | None = None
        if kwargs is not None:
            try:
                extra = json.loads(kwargs)
            except ValueError as exc:
                st.fail(f"--kwargs is not valid JSON ({exc}); quote it: --kwargs '{{\"name\": \"value\"}}'", EXIT_USAGE)
            if not isinstance(extra, dict):
                st.fail(f"--kwargs must be a JSON object like '{{\"name\": \"value\"}}', not {type(extra).__name__}",
                        EXIT_USAGE)
        if st.process_local_backend(st.app()):
            st.fail("the memory backend keeps jobs inside one process, so a job enqueued by this command would "
                    "vanish when it exits and no worker could see it; use NUVOM_QUEUE_BACKEND=sqlite (the default) "
                    "or file", EXIT_USAGE)
        try:
            app_ = st.app()
            known = sdk.task_options_from_manifest(task, app=app_) is not None
            handle = sdk.enqueue(task, *values, kwargs=extra, queue=queue, priority=priority, eta=eta,
                                 retries=retries, unique_key=unique_key, app=app_)
            job = app_.get_job(handle.id)
        except ValueError as exc:
            st.fail(str(exc), EXIT_USAGE)
        except NuvomError as exc:
            st.guard(exc)
        if not known:
            st.err.print(Text(f"note: task {task!r} is not in the discovery manifest; a worker must import it "
                              "(nuvom discover tasks, or runworker --tasks MODULE) or the job goes dead"))
        if as_json:
            st.print_json({"id": job.id, "task": job.task, "state": job.state.value, "queue": job.queue,
                           "eta": job.eta})
            return
        st.console.print(job.id, soft_wrap=True)
        if job.state == JobState.SCHEDULED:
            st.err.print(f"scheduled for {when(job.eta)}")

    @app.command("purge")
    def purge(
        states: list[str] = typer.Option([], "--state", "-s",
                                         help="Finished state to delete (repeatable): succeeded, failed, cancelled, dead. Default: all four."),
        older_than: str = typer.Option(None, "--older-than", help="Only jobs finished longer ago than this: 30m, 12h, 7d."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts (needs --yes)."),
    ) -> None:
        """Delete finished jobs; never queued, scheduled or running ones."""
        st = state()
        try:
            wanted = sdk.normalize_states(states or None)
            if older_than is not None:
                sdk.parse_duration(older_than)
        except ValueError as exc:
            st.fail(str(exc), EXIT_USAGE)
        live = [s.value for s in wanted or [] if not s.terminal]
        if live:
            st.fail(f"purge never deletes live jobs ({', '.join(live)}); cancel them first", EXIT_USAGE)
        if as_json and not yes:
            st.fail("--json needs --yes (there is no one to answer the prompt)", EXIT_USAGE)
        names = ", ".join(s.value for s in wanted) if wanted else "succeeded, failed, cancelled and dead"
        app_ = st.app()
        what = f"{names} jobs" + (f" finished more than {older_than} ago" if older_than else "")
        if not yes and not typer.confirm(f"Delete {what} from the {app_.settings.queue_backend} backend?"):
            st.err.print("nothing deleted")
            raise typer.Exit(EXIT_OK)
        try:
            deleted = sdk.purge_jobs(state=wanted, older_than=older_than, app=app_)
        except InvalidStateError as exc:
            st.fail(str(exc), EXIT_USAGE)
        except NuvomError as exc:
            st.guard(exc)
        if as_json:
            st.print_json({"deleted": deleted})
        else:
            st.console.print(f"deleted {deleted} job(s)")
