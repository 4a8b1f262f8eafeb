"""``nuvom runtestworker run``: one job through a real worker, in this process.

The job goes to a private queue (``testworker-<random>``) in the configured
backend and a :class:`~nuvom_kernel.worker.Worker` consuming only that queue
runs it, so timeouts, retries (with their delays), per-task and plugin hooks
and result storage behave exactly as on a deployed worker.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from nuvom_cli.commands.jobview import export, for_display, seconds, short
from nuvom_cli.state import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CliState, state
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import NuvomError
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.task import TASK_OPTIONS, JobHandle, Task, registry
from nuvom_kernel.worker import Worker
from nuvom_support.loader import ensure_on_path, import_task_modules
from nuvom_support.manifest import (
    default_manifest_path,
    load_manifest,
    manifest_import_paths,
    manifest_modules,
    scan_root_of,
)

#: Keys of a job file taken as per-run options (0.11's ``retries`` included).
_FILE_OPTIONS = tuple(o for o in TASK_OPTIONS if o not in ("name", "before_job", "after_job", "on_error",
                                                             "retry_on", "description", "category", "unique"))
#: Fields reset when a job exported by ``nuvom inspect job --format json`` is run again.
_RESET = ("state", "attempts", "history", "errors", "result", "progress", "reason", "cancel_requested", "token",
          "lease_expires_at", "worker_id", "started_at", "finished_at", "eta", "unique_key", "created_at",
          "updated_at", "id", "queue")


class JobFileError(Exception):
    """The job file cannot be used; the message says why and what to do."""


def read_job_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise JobFileError(f"invalid JSON in {path}: {exc}") from None
    if not isinstance(data, dict):
        raise JobFileError(f"{path} must hold a JSON object, not {type(data).__name__}")
    name = data.get("task", data.get("func_name"))
    if not isinstance(name, str) or not name:
        raise JobFileError(f"{path} has no 'func_name' (Nuvom 0.11) or 'task' field naming the task to run")
    if not isinstance(data.get("args", []), list):
        raise JobFileError(f"'args' in {path} must be a JSON list")
    if not isinstance(data.get("kwargs", {}) or {}, dict):
        raise JobFileError(f"'kwargs' in {path} must be a JSON object")
    return data


def task_name_of(data: dict[str, Any]) -> str:
    return str(data.get("task", data.get("func_name")))


def load_tasks(st: CliState, app: Nuvom, name: str, modules: list[str]) -> Task[Any]:
    """Import ``modules`` (or the manifest's module for ``name``) and return the task."""
    if modules:
        problems = import_task_modules(modules, app.root)
        for p in problems:
            st.err.print(Text(f"could not import task module {p.module}: {p.error}\n{p.traceback}"))
        if problems:
            raise JobFileError("fix the task module(s) above, then run again")
    elif registry.find(name) is None:
        path = default_manifest_path(app.settings, app.root)
        manifest = load_manifest(path, app.root)
        if manifest is None:
            raise JobFileError(f"no task manifest at {path}: run nuvom discover tasks or pass --task-module")
        module = manifest_modules(manifest).get(name)
        if module is None:
            raise JobFileError(f"task {name!r} is not in the manifest {path}: "
                               "run nuvom discover tasks or pass --task-module")
        scan_root = scan_root_of(manifest, app.root)
        for entry in manifest_import_paths(manifest, scan_root):
            ensure_on_path(entry)
        problems = import_task_modules([module], scan_root)
        if problems:
            raise JobFileError(f"could not import {module} (task {name!r}): {problems[0].error}\n{problems[0].traceback}")
    task = registry.find(name)
    if task is None:
        known = ", ".join(registry.names()) or "none"
        raise JobFileError(f"unknown task {name!r} (tasks registered: {known}); "
                           "check the name, run nuvom discover tasks or pass --task-module")
    return task


def build_test_job(data: dict[str, Any], task: Task[Any], app: Nuvom, queue: str) -> Job:
    """The job to run: an exported job with its run state reset, or a new job of
    ``task`` with the file's options (0.11's ``retries``/``timeout_secs`` too)."""
    if "state" in data and "task" in data:  # exported by `nuvom inspect job --format json`
        fields = {k: v for k, v in data.items() if k not in _RESET}
        job = Job.model_validate({**fields, "queue": queue})
        return job
    overrides = {k: data[k] for k in _FILE_OPTIONS if data.get(k) is not None and k != "queue"}
    return task.build_job(list(data.get("args", [])), dict(data.get("kwargs") or {}), app,
                          **overrides, queue=queue)


def run_one(app: Nuvom, job: Job, queue: str) -> Job:
    """Enqueue ``job`` on ``queue`` and run a worker on that queue until the job ends."""
    stored = app.enqueue(job)
    worker = Worker(app, queues=[queue], concurrency=1, worker_id=queue)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:  # surfaced after join
            errors.append(exc)
            worker.request_stop(hard=True)

    thread = threading.Thread(target=target, name="nuvom-testworker", daemon=True)
    thread.start()
    handle: JobHandle[Any] = JobHandle(stored.id, app)
    try:
        while True:
            try:
                handle.wait(timeout=0.5)
                break
            except TimeoutError:
                if errors or not thread.is_alive():
                    break
        worker.request_stop()
    except KeyboardInterrupt:
        worker.request_stop(hard=True)
        thread.join(10)
        raise
    thread.join()
    if errors:
        raise errors[0]
    return for_display(app, app.get_job(stored.id))


def outcome_panel(job: Job) -> Panel:
    ok = job.state == JobState.SUCCEEDED
    total = None if job.finished_at is None else job.finished_at - job.created_at
    lines: list[RenderableType] = [
        Text(f"job {job.id}  task {job.task}  attempts {job.attempts}/{job.max_attempts}  total {seconds(total)}"),
    ]
    if ok:
        lines.append(Text(f"result: {short(job.result, 2000)}"))
    for err in job.errors:
        lines.append(Text(f"attempt {err.attempt}: {err.type}: {err.message}" + (" (timed out)" if err.timed_out else ""),
                          style="red"))
    last = job.last_error
    if last is not None and last.traceback and not ok:
        lines.append(Syntax(last.traceback.rstrip(), "pytb", word_wrap=True, theme="ansi_dark"))
    if job.reason:
        lines.append(Text(f"reason: {job.reason}"))
    lines.append(Text(f"details: nuvom inspect job {job.id}", style="dim"))
    title = job.state.value.upper()
    return Panel(Group(*lines), title=title, title_align="left", border_style="green" if ok else "red")


def register(app: typer.Typer) -> None:
    rtw = typer.Typer(help="Run one job through the worker's execution path, here.", no_args_is_help=True)

    @rtw.command("run")
    def run(
        job_file: Path = typer.Argument(None, help="The job file (JSON); or use --job-file."),
        job_file_opt: Path = typer.Option(None, "--job-file", "-j", help="The job file (JSON)."),
        task_modules: list[str] = typer.Option([], "--task-module", "-m",
                                               help="Module or .py file defining the task (repeatable); default: the manifest."),
        as_json: bool = typer.Option(False, "--json", help="Print the finished job as JSON (as inspect --format json)."),
    ) -> None:
        """Run one job from a file as a worker would (timeout, retries, hooks, result
        storage) in this process; exit 0 if it succeeded, 1 if not."""
        st = state()
        if job_file is not None and job_file_opt is not None and job_file != job_file_opt:
            st.fail("give the job file once: as an argument or with --job-file", EXIT_USAGE)
        path = job_file or job_file_opt
        if path is None:
            st.fail("no job file: nuvom runtestworker run myjob.json (or --job-file myjob.json)", EXIT_USAGE)
        if not path.is_file():
            st.fail(f"job file {path} does not exist", EXIT_USAGE)
        app_ = st.app()
        queue = f"testworker-{uuid.uuid4().hex[:8]}"
        try:
            data = read_job_file(path)
            task = load_tasks(st, app_, task_name_of(data), task_modules)
            job = build_test_job(data, task, app_, queue)
        except JobFileError as exc:
            st.err.print(Panel(Text(str(exc)), title="cannot run the job", title_align="left", border_style="red"))
            raise typer.Exit(EXIT_FAILURE) from None
        except (ValueError, TypeError) as exc:
            st.err.print(Panel(Text(f"{path}: {exc}"), title="invalid job", title_align="left", border_style="red"))
            raise typer.Exit(EXIT_FAILURE) from None
        st.err.print(Text(f"running {job.task} as job {job.id} on {app_.settings.queue_backend} "
                          f"(queue {queue})", style="dim"))
        try:
            final = run_one(app_, job, queue)
        except NuvomError as exc:
            st.guard(exc)
        except KeyboardInterrupt:
            st.fail("interrupted", EXIT_FAILURE)
        if as_json:
            st.print_json(export(final))
        else:
            st.console.print(outcome_panel(final))
        sys.stdout.flush()
        raise typer.Exit(EXIT_OK if final.state == JobState.SUCCEEDED else EXIT_FAILURE)

    app.add_typer(rtw, name="runtestworker")
