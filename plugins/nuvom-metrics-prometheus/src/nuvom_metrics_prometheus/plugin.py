"""The hooks: count job events, serve ``/metrics`` from a worker, add ``nuvom metrics``.

Job events are counted in the process that sees them (the producer's
``nuvom_job_enqueued``, the worker's ``nuvom_job_started``,
``nuvom_job_finished`` and ``nuvom_leases_expired``, the scheduler's
``nuvom_schedule_fired``) into the project's metrics directory
(:mod:`nuvom_metrics_prometheus.recorder`).  The project is the one whose
settings this process was configured with last (``nuvom_configure``): one
process serves one project, as a worker or an application does.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nuvom_kernel import hookimpl
from nuvom_kernel.models import Job, JobState
from nuvom_metrics_prometheus.options import ENV_NAMES, SECTION, PrometheusOptions
from nuvom_metrics_prometheus.recorder import METRICS_DIR, Recorder

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.hookspecs import RegisterSettings
    from nuvom_kernel.lifecycle import NuvomContext
    from nuvom_kernel.schedules import Schedule
    from nuvom_kernel.settings import NuvomSettings
    from nuvom_metrics_prometheus.server import MetricsServer

log = logging.getLogger("nuvom.metrics")

OUTCOME_OF = {
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.DEAD: "dead",
    JobState.QUEUED: "retried",
    JobState.SCHEDULED: "retried",
}

_lock = threading.Lock()
#: one recorder per metrics directory in this process, and the one job events go to
_recorders: dict[Path, Recorder] = {}
_current: Recorder | None = None
#: servers started for workers, by worker id
_servers: dict[str, MetricsServer] = {}
#: attempts this process started (job id, token) -> start time: only they get a run time
_running: dict[tuple[str, int | None], float] = {}


def metrics_dir(root: str | Path) -> Path:
    """The project's metrics directory (the job-event files of all its processes)."""
    return Path(root) / METRICS_DIR


def recorder_for(root: str | Path) -> Recorder:
    directory = metrics_dir(root).resolve()
    with _lock:
        recorder = _recorders.get(directory)
        if recorder is None:
            recorder = _recorders[directory] = Recorder(directory)
        return recorder


def options_of(app: Nuvom) -> PrometheusOptions:
    resolved = app.plugin_settings.get(SECTION)
    if resolved is not None and isinstance(resolved.values, PrometheusOptions):
        return resolved.values
    return PrometheusOptions.model_validate({})


@hookimpl
def nuvom_register_settings(register: RegisterSettings) -> None:
    register(SECTION, PrometheusOptions, env=ENV_NAMES)


@hookimpl
def nuvom_configure(settings: NuvomSettings) -> None:
    global _current
    if settings.project_root:
        _current = recorder_for(settings.project_root)


def _labels(job: Job) -> dict[str, str]:
    return {"task": job.task, "queue": job.queue}


@hookimpl
def nuvom_job_enqueued(job: Job) -> None:
    if _current is not None:
        _current.inc("nuvom_jobs_enqueued", _labels(job))


@hookimpl
def nuvom_job_started(job: Job) -> None:
    if _current is None:
        return
    labels = _labels(job)
    _current.inc("nuvom_jobs_started", labels)
    due = max(job.created_at, job.eta or 0.0)
    started = job.started_at if job.started_at is not None else time.time()
    _running[(job.id, job.token)] = started
    _current.observe("nuvom_job_queue_wait_seconds", labels, started - due)


@hookimpl
def nuvom_job_finished(job: Job, record: Job) -> None:
    if _current is None:
        return
    labels = _labels(record)
    outcome = OUTCOME_OF.get(record.state)
    if outcome is None:
        return
    _current.inc("nuvom_jobs_finished", {**labels, "outcome": outcome})
    started = _running.pop((job.id, job.token), None)
    if started is None:
        return  # never ran here (unknown task, undecodable payload): no run time
    if outcome == "retried":
        error = record.last_error if record.errors else None
        ended = error.at if error is not None else record.updated_at
    else:
        ended = record.finished_at if record.finished_at is not None else record.updated_at
    _current.observe("nuvom_job_run_seconds", labels, ended - started)


@hookimpl
def nuvom_leases_expired(worker_id: str, count: int) -> None:
    if _current is not None:
        _current.inc("nuvom_lease_expiries", {}, float(count))


@hookimpl
def nuvom_schedule_fired(schedule: Schedule, jobs: list[Job], missed: int, coalesced: int) -> None:
    if _current is None:
        return
    labels = {"schedule": schedule.id, "task": schedule.task}
    if jobs:
        _current.inc("nuvom_schedule_fires", labels, float(len(jobs)))
    for reason, count in (("missed", missed), ("coalesced", coalesced)):
        if count:
            _current.inc("nuvom_schedule_skips", {**labels, "reason": reason}, float(count))


@hookimpl
def nuvom_startup(ctx: NuvomContext) -> None:
    app = ctx.app
    if ctx.role != "worker" or app is None or ctx.worker_id is None:
        return
    options = options_of(app)
    if options.port is None:
        return
    try:
        server = serve(app, options.host, options.port, options.token.get_secret_value() if options.token else None)
    except OSError as exc:  # most often another worker of this host took the port: it serves the same files
        log.warning("worker %s: not serving metrics on %s:%s (%s); one endpoint per host serves every "
                    "process's metrics, so another worker or `nuvom metrics serve` may already do it",
                    ctx.worker_id, options.host, options.port, exc,
                    extra={"event": "metrics.not_serving", "worker_id": ctx.worker_id})
        return
    _servers[ctx.worker_id] = server
    log.info("worker %s: metrics at %s", ctx.worker_id, server.url,
             extra={"event": "metrics.serving", "worker_id": ctx.worker_id, "url": server.url})


@hookimpl
def nuvom_shutdown(ctx: NuvomContext) -> None:
    server = _servers.pop(ctx.worker_id or "", None)
    if server is not None:
        server.stop()
    if _current is not None:
        _current.close()  # unmapped, so the files can be removed (Windows); reopened by the next event


def serve(app: Nuvom, host: str, port: int, token: str | None) -> MetricsServer:
    """Start serving ``app``'s metrics (from a daemon thread); ``port=0`` picks a free port."""
    from nuvom_metrics_prometheus.collector import make_registry
    from nuvom_metrics_prometheus.server import MetricsServer

    return MetricsServer(make_registry(app, metrics_dir(app.root)), host, port, token).start()


@hookimpl
def nuvom_register_commands(app: Any, cli: Any) -> None:
    # typer is imported when the CLI is built, never by workers' job hooks
    from nuvom_metrics_prometheus.commands import register

    register(app, cli)
