"""``nuvom inspect job``, ``status``, ``retry job|jobs`` and ``cancel job``."""

from __future__ import annotations

import json
import sys
from enum import Enum

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from nuvom import sdk
from nuvom_cli.commands.jobview import (
    checked_id,
    export,
    for_display,
    job_op,
    job_view,
    short,
    state_text,
)
from nuvom_cli.state import EXIT_OK, EXIT_USAGE, state
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import CapabilityError, NuvomError
from nuvom_kernel.models import RETRYABLE_STATES, JobState


class Format(str, Enum):
    table = "table"
    json = "json"
    raw = "raw"


def register(app: typer.Typer) -> None:
    inspect_app = typer.Typer(help="Look at one object in detail.", no_args_is_help=True)
    retry_app = typer.Typer(help="Run finished jobs again.", no_args_is_help=True)
    cancel_app = typer.Typer(help="Cancel jobs.", no_args_is_help=True)

    @inspect_app.command("job")
    def inspect_job(
        job_id: str = typer.Argument(..., help="The job id."),
        fmt: Format = typer.Option(Format.table, "--format", "-f", case_sensitive=False,
                                   help="table (people), json (scripts; runtestworker reads it) or raw (stored record)."),
    ) -> None:
        """Every field of a job, each attempt with its error and traceback, its history."""
        st = state()
        job = job_op(st, job_id, Nuvom.get_job)
        if fmt != Format.raw:  # raw: the stored record as it is
            job = for_display(st.app(), job, lossless=fmt == Format.json)
        if fmt == Format.json:
            st.print_json(export(job))
        elif fmt == Format.raw:
            sys.stdout.write(json.dumps(job.model_dump(mode="json"), indent=2, default=str, ensure_ascii=False) + "\n")
            for err in job.errors:
                sys.stdout.write(f"\n--- attempt {err.attempt}: {err.type}: {err.message}\n{err.traceback}")
            sys.stdout.flush()
        else:
            st.console.print(job_view(job))

    @app.command("status")
    def status(
        job_id: str = typer.Argument(..., help="The job id."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """A job's state, attempts, and its result or last error (exit 0 if the job exists)."""
        st = state()
        job = for_display(st.app(), job_op(st, job_id, Nuvom.get_job))
        err = job.last_error
        # a job that waits with nobody to run it looks the same as one about to run: say which
        waiting = job.state in (JobState.QUEUED, JobState.SCHEDULED)
        try:
            live = len(sdk.live_workers(job.queue, app=st.app())) if waiting else None
        except CapabilityError:  # a backend without a worker registry cannot tell
            live = None
        if as_json:
            st.print_json({"id": job.id, "task": job.task, "state": job.state.value, "attempts": job.attempts,
                           "live_workers": live,
                           "max_attempts": job.max_attempts, "progress": job.progress,
                           "result": job.result if job.state == JobState.SUCCEEDED else None,
                           "reason": job.reason,
                           "last_error": err.model_dump(mode="json", exclude={"traceback"}) if err else None})
            return
        line = Text.assemble(state_text(job.state), f"  {job.task}  attempt {job.attempts}/{job.max_attempts}")
        st.console.print(line)
        if job.state == JobState.SUCCEEDED:
            st.console.print(Text(f"result: {short(job.result, 2000)}"))
        elif err is not None:
            st.console.print(Text(f"last error (attempt {err.attempt}): {err.type}: {err.message}"))
        if job.reason and job.state in (JobState.DEAD, JobState.CANCELLED):
            st.console.print(Text(f"reason: {job.reason}"))
        if job.progress is not None and not job.is_terminal():
            st.console.print(Text(f"progress: {short(job.progress, 200)}"))
        if live == 0:
            app_ = st.app()
            st.err.print(Text(
                f"note: no worker consuming queue {job.queue!r} has heartbeated on this store "
                f"({app_.settings.queue_backend} under {app_.root}) in the last {app_.settings.lease_secs:g}s; "
                "the job runs when one does: nuvom runworker" + ("" if job.queue == "default" else f" -q {job.queue}"),
                style="yellow"), soft_wrap=True)

    @retry_app.command("job")
    def retry_job(
        job_id: str = typer.Argument(..., help="The job id."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Run a finished job again.  A failed, dead or cancelled job runs again under the
        same id (history kept), also when its retries are exhausted; a succeeded job keeps
        its result and a copy is enqueued under a new id (as Nuvom 0.11 did).  A queued,
        scheduled or running job is refused (exit 2)."""
        st = state()
        job = job_op(st, job_id, lambda app, jid: sdk.retry_or_rerun(jid, app=app))
        rerun = job.id != job_id
        if as_json:
            st.print_json({"id": job.id, "state": job.state.value, "attempts": job.attempts,
                           "max_attempts": job.max_attempts, "rerun_of": job_id if rerun else None})
            return
        if rerun:
            st.console.print(Text(f"job {job_id} had succeeded and keeps its result; "
                                  f"enqueued a copy as job {job.id}"))
            return
        st.console.print(Text(f"job {job.id} queued again: attempt {job.attempts + 1} "
                              f"(of {job.max_attempts} allowed) runs when a worker takes it"))

    @retry_app.command("jobs")
    def retry_jobs(
        states: list[str] = typer.Option(["failed"], "--state", "-s",
                                         help="failed, dead or cancelled; repeatable (default failed)."),
        task: str = typer.Option(None, "--task", "-t", help="Only jobs of this task."),
        queue: str = typer.Option(None, "--queue", "-q", help="Only jobs of this queue."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts (implies --yes)."),
    ) -> None:
        """Retry every job in a state (optionally of one task or queue), with a progress bar."""
        st = state()
        if queue is not None:
            checked_id(st, queue, "queue name")
        try:
            wanted = sdk.normalize_states(states)
            wrong = [s.value for s in wanted or [] if s not in RETRYABLE_STATES]
            if wrong:
                st.fail(f"cannot retry {', '.join(wrong)} jobs: only failed, dead or cancelled jobs can be retried",
                        EXIT_USAGE)
            app_ = st.app()
            matching = sum(1 for _ in sdk.iter_jobs(state=wanted, task=task, queue=queue, app=app_))
        except ValueError as exc:
            st.fail(str(exc), EXIT_USAGE)
        except NuvomError as exc:
            st.guard(exc)
        names = ", ".join(s.value for s in wanted or [])
        if matching == 0:
            if as_json:
                st.print_json({"retried": [], "skipped": {}})
            else:
                st.console.print(f"no {names} jobs to retry" + (f" for task {task}" if task else ""))
            raise typer.Exit(EXIT_OK)
        if not (yes or as_json) and not typer.confirm(
                f"Retry {matching} {names} job(s)" + (f" of task {task}" if task else "") + "?"):
            st.err.print("nothing retried")
            raise typer.Exit(EXIT_OK)
        with Progress(TextColumn("retrying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=st.err, transient=True, disable=as_json) as bar:
            handle = bar.add_task("retry", total=matching)

            def advance(done: int, total: int) -> None:
                bar.update(handle, completed=done, total=total)

            try:
                report = sdk.retry_jobs(state=wanted or "failed", task=task, queue=queue, progress=advance, app=app_)
            except NuvomError as exc:
                st.guard(exc)
        if as_json:
            st.print_json(report)
            return
        st.console.print(f"retried {len(report['retried'])} job(s)")
        for jid, why in report["skipped"].items():
            st.err.print(Text(f"skipped {jid}: {why}"))

    @cancel_app.command("job")
    def cancel_job(
        job_id: str = typer.Argument(..., help="The job id."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Cancel a queued or scheduled job at once; ask a running one to stop.
        A job that already ended is refused (exit 2)."""
        st = state()
        job = job_op(st, job_id, Nuvom.cancel_job)
        if as_json:
            st.print_json({"id": job.id, "state": job.state.value, "cancel_requested": job.cancel_requested})
            return
        if job.state == JobState.CANCELLED:
            st.console.print(f"job {job.id} cancelled")
        else:
            st.console.print(f"job {job.id} is {job.state}: asked to stop; it ends as cancelled when its task stops")

    app.add_typer(inspect_app, name="inspect")
    app.add_typer(retry_app, name="retry")
    app.add_typer(cancel_app, name="cancel")
