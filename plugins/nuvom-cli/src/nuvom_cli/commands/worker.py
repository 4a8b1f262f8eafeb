"""``nuvom runworker``."""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from nuvom_cli.devreload import DevReloader
from nuvom_cli.state import EXIT_FAILURE, EXIT_USAGE, state
from nuvom_kernel.errors import NuvomError, StoreError
from nuvom_kernel.models import validate_id
from nuvom_kernel.settings import MAX_THREADS
from nuvom_kernel.task import registry
from nuvom_kernel.worker import Worker, stop_file
from nuvom_support.files import touch_private
from nuvom_support.loader import ensure_on_path, import_task_modules, load_from_manifest


def missing_task_module(spec: str, root: Path) -> str | None:
    """Why ``--tasks spec`` names nothing that exists, or None (a module that
    exists but fails to import is reported by the import, with its traceback)."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec) if Path(spec).is_absolute() else root / spec
        return None if path.is_file() else f"--tasks {spec}: file {path.resolve()} does not exist"
    ensure_on_path(root)
    try:
        found = importlib.util.find_spec(spec)
    except ModuleNotFoundError:
        found = None
    except Exception:  # the module exists but its package fails to import: the import says why
        return None
    if found is not None:
        return None
    return (f"--tasks {spec}: no module named {spec!r} in the project root ({root}) or the environment; "
            "give a module importable from there, or a path to a .py file")


MEMORY_WARNING = ("the memory backend keeps jobs inside this worker process: jobs enqueued by any other process "
                  "(your application, `nuvom enqueue`) are invisible to it, and its own jobs vanish when it stops; "
                  "use NUVOM_QUEUE_BACKEND=sqlite (the default) or file for a separate worker")


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def register(app: typer.Typer) -> None:
    @app.command("runworker")
    def runworker(
        concurrency: int = typer.Option(None, "--concurrency", "-c", min=1, max=MAX_THREADS,
                                        help="Jobs run at once (default NUVOM_MAX_WORKERS)."),
        queues: list[str] = typer.Option(["default"], "--queues", "-q", help="Queues to consume, comma-separated or repeated."),
        executor: str = typer.Option(None, "--executor", "-e", help="Executor (default NUVOM_EXECUTOR): thread, process, ..."),
        burst: bool = typer.Option(False, "--burst", help="Exit when no job is left to run."),
        tasks: list[str] = typer.Option([], "--tasks", "-t", help="Module or .py file defining tasks (repeatable)."),
        worker_id: str = typer.Option(None, "--id", help="Worker id (default host-pid-random)."),
        dev: bool = typer.Option(False, "--dev", help="Reload task modules when their files change."),
        no_manifest: bool = typer.Option(False, "--no-manifest", help="Do not load tasks from the discovery manifest."),
        metrics_port: int = typer.Option(None, "--metrics-port", min=0, max=65535,
                                         help="Serve Prometheus metrics on this port while the worker runs "
                                              "(NUVOM_PROMETHEUS__PORT; needs nuvom-metrics-prometheus)."),
        no_scheduler: bool = typer.Option(False, "--no-scheduler",
                                          help="Do not run the scheduler loop in this worker (it fires due schedules by default)."),
    ) -> None:
        """Run a worker in the foreground until Ctrl-C (graceful; twice to abandon running jobs)."""
        st = state()
        overrides: dict[str, Any] = {"executor": executor, "prometheus_port": metrics_port}
        if no_scheduler and any(d.section == "scheduler" for d in st.plugins.settings_declarations()):
            overrides["scheduler__in_workers"] = False  # the scheduler plugin's setting (NUVOM_SCHEDULER__IN_WORKERS)
        app_ = st.app(**{k: v for k, v in overrides.items() if v is not None})
        if metrics_port is not None and "prometheus" not in app_.plugin_settings:
            st.fail("--metrics-port needs the metrics plugin: pip install 'nuvom[prometheus]' "
                    "(nuvom-metrics-prometheus)", EXIT_USAGE)
        modules = _split(tasks)
        for spec in modules:
            missing = missing_task_module(spec, app_.root)
            if missing:
                st.fail(missing, EXIT_USAGE)
        problems = import_task_modules(modules, app_.root)
        if not no_manifest:
            try:
                loaded = load_from_manifest(app_, refresh=True)
            except NuvomError as exc:
                st.fail(str(exc), EXIT_USAGE)
            problems += loaded.problems
            if loaded.note and not modules:
                st.say(f"[yellow]note:[/] {escape(loaded.note)}", loaded.note, "cli.note")
        for p in problems:
            st.say(f"[red]could not import task module {escape(p.module)}[/]: {escape(str(p.error))}",
                   f"could not import task module {p.module}: {p.error}", "worker.task_import_error",
                   logging.ERROR, module=p.module, error_message=str(p.error), traceback=p.traceback)
        try:
            worker = Worker(app_, queues=_split(queues), concurrency=concurrency, burst=burst, worker_id=worker_id)
            verify = getattr(app_.queue, "verify", None)  # open the backend now: a bad path fails before the loop
            if callable(verify):
                verify()  # a damaged store (SQLite quick_check) fails here, once, not in every claim
        except StoreError as exc:  # the environment (permissions, disk, damaged file), not the arguments
            st.fail(str(exc), EXIT_FAILURE)
        except NuvomError as exc:
            st.fail(str(exc), EXIT_USAGE)
        if st.process_local_backend(app_):
            st.say("[bold yellow]warning:[/] " + escape(MEMORY_WARNING), MEMORY_WARNING, "cli.warning",
                   logging.WARNING, soft_wrap=True)
        about = (f"on {app_.settings.queue_backend}, queues {', '.join(worker.queues)}, "
                 f"{worker.concurrency} x {worker.executor_name}; {len(registry.names())} task(s): "
                 f"{', '.join(registry.names()) or '-'}")
        st.say(f"[green]worker {escape(worker.id)}[/] {escape(about)}", f"worker {worker.id} {about}",
               "worker.starting", worker_id=worker.id, tasks=registry.names())
        _install_signal_handlers(worker)
        reloader = None
        if dev:
            reloader = DevReloader(app_, modules=modules)
            reloader.start()
            st.say("[cyan]dev mode:[/] task modules reload when their files change",
                   "dev mode: task modules reload when their files change", "cli.note")
        try:
            stats = worker.run()
        finally:
            if reloader is not None:
                reloader.stop()
        if not st.structured_logs:  # the worker.stopped record says the same
            st.err.print(f"worker {worker.id} stopped: {stats.succeeded} succeeded, {stats.failed} failed, "
                         f"{stats.retried} retried, {stats.dead} dead")
        abandoned = worker.held_job_ids() if worker._hard_stop.is_set() else []
        if abandoned:
            # a second Ctrl-C: these jobs run again elsewhere once their leases expire
            st.fail(f"worker {worker.id} abandoned {len(abandoned)} job(s) it held (a second Ctrl-C/SIGTERM): "
                    f"{', '.join(abandoned[:5])}{' ...' if len(abandoned) > 5 else ''}; they run again once "
                    "their leases expire", EXIT_FAILURE)


def register_stop(app: typer.Typer) -> None:
    @app.command("stop")
    def stop(
        worker_id: str = typer.Option(None, "--id", help="Stop this worker (its id is printed at start and by `nuvom stats`)."),
        all_workers: bool = typer.Option(False, "--all", help="Stop every worker of this project started before now."),
    ) -> None:
        """Ask workers to stop gracefully, on any OS (no signals needed)."""
        st = state()
        if bool(worker_id) == all_workers:
            st.fail("pass either --id WORKER_ID or --all", EXIT_USAGE)
        if worker_id:
            try:
                validate_id(worker_id, "worker id")
            except NuvomError as exc:
                st.fail(str(exc), EXIT_USAGE)
        path = touch_private(stop_file(st.plugins.root, worker_id))  # 0600 in 0700 folders, whatever the umask
        who = f"worker {worker_id}" if worker_id else "every worker started before now"
        st.console.print(f"asked {who} to stop ({path}); running jobs finish first")


def _install_signal_handlers(worker: Worker) -> None:
    """Ctrl-C / SIGTERM ask for a graceful stop; a second one abandons running jobs."""
    if threading.current_thread() is not threading.main_thread():
        return
    hits = {"n": 0}

    def handler(signum: int, frame: Any) -> None:
        hits["n"] += 1
        worker.request_stop(hard=hits["n"] > 1)

    signal.signal(signal.SIGINT, handler)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, handler)
    if hasattr(signal, "SIGBREAK"):  # Ctrl-Break on Windows
        signal.signal(signal.SIGBREAK, handler)
