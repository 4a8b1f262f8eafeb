"""Shared pieces of the job commands: id checks, times, tables and panels."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from nuvom_cli.state import EXIT_USAGE, CliState
from nuvom_cli.tables import fit
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import InvalidIdError, NuvomError
from nuvom_kernel.models import Job, JobState, now, validate_id

STATE_STYLE = {
    JobState.QUEUED: "cyan", JobState.SCHEDULED: "blue", JobState.CLAIMED: "cyan", JobState.RUNNING: "yellow",
    JobState.SUCCEEDED: "green", JobState.FAILED: "red", JobState.CANCELLED: "magenta",
    JobState.DEAD: "bold red",
}


def checked_id(st: CliState, job_id: str, what: str = "job id") -> str:
    """``job_id`` if safe (RELIABILITY S3), else exit 2 before any backend is opened."""
    try:
        return validate_id(job_id, what)
    except InvalidIdError as exc:
        st.fail(str(exc), EXIT_USAGE)


def job_op(st: CliState, job_id: str, op: Callable[[Nuvom, str], Job]) -> Job:
    """Validate ``job_id``, run ``op(app, job_id)``; errors exit with their documented code."""
    checked_id(st, job_id)
    try:
        return op(st.app(), job_id)
    except NuvomError as exc:
        st.guard(exc)


def when(ts: float | None) -> str:
    """A timestamp as UTC ISO with its age: ``2025-08-26 14:03:05Z (3m ago)``."""
    if ts is None:
        return "-"
    stamp = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "Z"
    delta = now() - ts
    rel = ago(abs(delta))
    return f"{stamp} ({rel} ago)" if delta >= 0 else f"{stamp} (in {rel})"


def compact_time(ts: float | None) -> str:
    """``11-27 21:17:39`` (UTC) for narrow tables."""
    return "-" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%m-%d %H:%M:%S")


def ago(secs: float) -> str:
    if secs < 1:
        return f"{secs * 1000:.0f}ms"
    if secs < 90:
        return f"{secs:.1f}s"
    if secs < 5400:
        return f"{secs / 60:.0f}m"
    if secs < 172800:
        return f"{secs / 3600:.1f}h"
    return f"{secs / 86400:.1f}d"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def state_text(state: JobState | str) -> Text:
    js = JobState(state)
    return Text(js.value, style=STATE_STYLE.get(js, ""))


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def for_display(app: Nuvom, job: Job, *, lossless: bool = False) -> Job:
    """``job`` with arguments and result as the caller passed and the task
    returned them: payloads stored through another serializer are decoded
    (docs/configuration.md, Serialization).  A value JSON cannot show
    (``bytes`` from msgpack) appears as its repr, or, with ``lossless`` (an
    export another command reads back), stays in its stored envelope.  A
    payload this process cannot decode is shown as stored."""
    from nuvom_kernel.payloads import args_envelope, is_envelope

    encoded_args = args_envelope(job.args, job.kwargs) is not None
    if not encoded_args and not is_envelope(job.result):
        return job
    update: dict[str, Any] = {}
    try:
        if encoded_args:
            args, kwargs = app.decode_call(job)
            if not lossless or _json_ok([args, kwargs]):
                update["args"] = _shown(args)
                update["kwargs"] = _shown(kwargs)
        if is_envelope(job.result):
            result = app.decode_value(job.result)
            if _json_ok(result):
                update["result"] = result
            elif not lossless:
                update["result"] = _shown(result)
    except NuvomError:
        return job
    return job.model_copy(update=update)


def _shown(value: Any) -> Any:
    """Containers kept, with what JSON cannot show replaced by its repr."""
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    return value if _json_ok(value) else repr(value)


def short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def attempts_of(job: Job) -> list[dict[str, Any]]:
    """One entry per attempt, from the history: start, end, duration, outcome, error."""
    out: list[dict[str, Any]] = []
    hist = job.history
    for i, tr in enumerate(hist):
        if tr.state != JobState.RUNNING:
            continue
        end = next((t for t in hist[i + 1:] if t.state != JobState.RUNNING), None)
        out.append({"attempt": len(out) + 1, "started_at": tr.at, "ended_at": end.at if end else None,
                    "duration_secs": (end.at - tr.at) if end else None,
                    "outcome": end.state.value if end else "running", "note": end.note if end else tr.note})
    by_attempt = {e.attempt: e for e in job.errors}
    for entry in out:
        err = by_attempt.get(entry["attempt"])
        entry["error"] = err.model_dump(mode="json") if err else None
    return out


def durations(job: Job) -> dict[str, float | None]:
    """Waiting, last run and total times in seconds (``None`` when not known yet)."""
    first_start = next((t.at for t in job.history if t.state == JobState.RUNNING), None)
    return {
        "wait_secs": None if first_start is None else first_start - job.created_at,
        "last_run_secs": None if job.started_at is None or job.finished_at is None else job.finished_at - job.started_at,
        "total_secs": None if job.finished_at is None else job.finished_at - job.created_at,
    }


def job_table(job: Job) -> Table:
    table = Table(title=f"Job {job.id}", show_header=False, title_justify="left")
    table.add_column("Field", style="bold")
    table.add_column("Value", overflow="fold")
    d = durations(job)
    rows: list[tuple[str, RenderableType | str]] = [
        ("state", state_text(job.state)),
        ("task", job.task),
        ("queue / priority", f"{job.queue} / {job.priority}"),
        ("args", short(job.args, 400)),
        ("kwargs", short(job.kwargs, 400)),
        ("attempts", f"{job.attempts} of {job.max_attempts} allowed"),
        ("result", "-" if job.state != JobState.SUCCEEDED else short(job.result, 400)),
        ("progress", "-" if job.progress is None else short(job.progress, 200)),
        ("reason", job.reason or "-"),
        ("options", f"timeout {job.timeout_secs}s ({job.timeout_policy}), retries {job.max_retries}, "
                    f"delay {job.retry_delay_secs}s {job.backoff}, store_result {job.store_result}"),
        ("unique key / tags", f"{job.unique_key or '-'} / {', '.join(job.tags) or '-'}"),
        ("created", when(job.created_at)),
        ("eta", when(job.eta)),
        ("started (last attempt)", when(job.started_at)),
        ("finished", when(job.finished_at)),
        ("durations", f"waited {seconds(d['wait_secs'])}, last run {seconds(d['last_run_secs'])}, "
                      f"total {seconds(d['total_secs'])}"),
        ("worker / lease", f"{job.worker_id or '-'} / {when(job.lease_expires_at)}"),
        ("cancel requested", str(job.cancel_requested)),
    ]
    for name, value in rows:
        table.add_row(name, value if not isinstance(value, str) else Text(value))
    return table


def attempts_table(job: Job) -> Table:
    table = Table(title="Attempts", title_justify="left")
    for col in ("#", "Started", "Duration", "Outcome", "Error"):
        table.add_column(col, overflow="fold")
    for a in attempts_of(job):
        err = a["error"]
        table.add_row(str(a["attempt"]), when(a["started_at"]), seconds(a["duration_secs"]),
                      Text(f"{a['outcome']}" + (f" ({a['note']})" if a["note"] else "")),
                      Text(f"{err['type']}: {err['message']}" if err else "-"))
    return table


def history_table(job: Job) -> Table:
    table = Table(title="History", title_justify="left")
    for col in ("At", "State", "Note"):
        table.add_column(col, overflow="fold")
    for tr in job.history:
        table.add_row(when(tr.at), state_text(tr.state), Text(tr.note or ""))
    return table


def traceback_panels(job: Job) -> list[Panel]:
    panels = []
    for err in job.errors:
        body: RenderableType = (Syntax(err.traceback.rstrip(), "pytb", word_wrap=True, theme="ansi_dark")
                                if err.traceback else Text(f"{err.type}: {err.message}"))
        title = f"attempt {err.attempt}: {escape(err.type)}" + (" (timed out)" if err.timed_out else "")
        panels.append(Panel(body, title=title, title_align="left", border_style="red"))
    return panels


def job_view(job: Job) -> Group:
    return Group(fit(job_table(job)), fit(attempts_table(job)), fit(history_table(job)), *traceback_panels(job))


def export(job: Job) -> dict[str, Any]:
    """``inspect --format json``: every public field plus derived timings; loadable
    by ``nuvom runtestworker run`` (unknown keys are ignored there)."""
    data = job.public_dict()
    data["durations"] = durations(job)
    data["attempt_details"] = attempts_of(job)
    return data
