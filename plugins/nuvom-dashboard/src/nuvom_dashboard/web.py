"""The ASGI app: Starlette routes, Jinja2 templates, no JavaScript.

Store calls are blocking; each request runs them in Starlette's thread pool.
In read-only mode the action routes do not exist at all (S8).
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from nuvom_dashboard import schedule_views, security, views
from nuvom_dashboard.options import DashboardOptions
from nuvom_dashboard.svg import STATE_COLOURS, depth_svg, throughput_svg
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import (
    InvalidIdError,
    InvalidStateError,
    JobNotFoundError,
    NuvomError,
    ScheduleNotFoundError,
)
from nuvom_kernel.models import TERMINAL_STATES, JobState, now

HERE = Path(__file__).parent
NOTICE_COOKIE = "nuvom_dashboard_notice"


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _age(secs: float | None) -> str:
    if secs is None:
        return "—"
    if secs < 1:
        return f"{secs * 1000:.0f} ms"
    if secs < 120:
        return f"{secs:.0f} s"
    if secs < 7200:
        return f"{secs / 60:.0f} min"
    if secs < 172800:
        return f"{secs / 3600:.1f} h"
    return f"{secs / 86400:.1f} d"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


class Dashboard:
    """The routes, bound to one app and one set of options."""

    def __init__(self, app: Nuvom, options: DashboardOptions) -> None:
        self.app = app
        self.options = options
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters.update(when=_when, age=_age, pretty=_pretty)
        env.globals.update(colours=STATE_COLOURS, states=views.STATES, read_only=options.read_only,
                           terminal=[s.value for s in JobState if s in TERMINAL_STATES],
                           backend=app.settings.queue_backend, bulk_limit=options.bulk_limit)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        notice = _notice(request)
        response = self.templates.TemplateResponse(request, name, {"csrf": request.state.csrf, "notice": notice,
                                                                   **context}, status_code=status)
        if notice is not None:
            response.delete_cookie(NOTICE_COOKIE)
        return response

    # -- pages -----------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        data = await run_in_threadpool(views.overview, self.app, self.options)
        depth = {q: Markup(depth_svg(c, sum(c.values()))) for q, c in data["queues"].items()}
        refresh = request.query_params.get("refresh", "")
        return self.render(request, "overview.html", page="overview", depth=depth,
                           chart_minutes=self.options.chart_minutes, chart_scan_limit=self.options.chart_scan_limit,
                           refresh=int(refresh) if refresh.isdigit() and 1 <= int(refresh) <= 3600 else None,
                           **data)

    async def chart(self, request: Request) -> Response:
        chart = await run_in_threadpool(views.throughput, self.app, self.options, now())
        return Response(throughput_svg(chart), media_type="image/svg+xml")

    async def jobs(self, request: Request, dead: bool = False) -> Response:
        params = request.query_params
        filters = views.Filters.from_query(params, ["dead"] if dead else params.getlist("state"))
        error = None
        page = None
        try:
            wanted = filters.to_filter()
            cursor = views.check_cursor(params.get("cursor"))
            page = await run_in_threadpool(self.app.jobs.query_jobs, wanted,
                                           limit=self.options.page_size, cursor=cursor)
        except views.BadFilter as exc:
            error = str(exc)
        next_url = None
        if page is not None and page.cursor is not None:
            next_url = request.url.path + "?" + urlencode([*filters.query(), ("cursor", page.cursor)])
        return self.render(request, "jobs.html", status=400 if error else 200,
                           page="dead" if dead else "jobs", filters=filters, error=error,
                           jobs=page.jobs if page else [], next_url=next_url,
                           first_url=request.url.path + "?" + urlencode(filters.query()) if params.get("cursor") else None,
                           filter_fields=filters.query())

    async def dead(self, request: Request) -> Response:
        return await self.jobs(request, dead=True)

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            job = await run_in_threadpool(self.app.get_job, job_id)
        except (JobNotFoundError, InvalidIdError) as exc:
            return self.render(request, "error.html", status=404, page="jobs", title="No such job", message=str(exc))
        return self.render(request, "job.html", page="jobs", job=job, actions=views.job_actions(job),
                           fraction=views.progress_fraction(job.progress),
                           refresh=None if job.is_terminal() else 2)

    async def schedules(self, request: Request) -> Response:
        data = await run_in_threadpool(schedule_views.listing, self.app)
        return self.render(request, "schedules.html", page="schedules", **data)

    async def schedule(self, request: Request) -> Response:
        schedule_id = request.path_params["schedule_id"]
        reason = await run_in_threadpool(schedule_views.unavailable, self.app)
        if reason is not None:
            return self.render(request, "error.html", status=404, page="schedules", title="No schedules",
                               message=reason)
        try:
            data = await run_in_threadpool(schedule_views.detail, self.app, schedule_id)
        except (ScheduleNotFoundError, InvalidIdError) as exc:
            return self.render(request, "error.html", status=404, page="schedules", title="No such schedule",
                               message=str(exc))
        return self.render(request, "schedule.html", page="schedules", **data)

    async def login(self, request: Request) -> Response:
        target = security.safe_next(request.query_params.get("next"))
        token = self.options.token_value()
        if token is None:
            return RedirectResponse(target, status_code=303)
        error = None
        if request.method == "POST":
            form = await request.form()
            reason = security.cross_site_reason(request, _field(form, security.CSRF_FIELD), None)
            given = _field(form, "token") or ""
            if reason:
                error = reason
            elif hmac.compare_digest(given.encode(), token.encode()):
                response = RedirectResponse(security.safe_next(_field(form, "next")), status_code=303)
                response.set_cookie(security.AUTH_COOKIE, security.session_digest(token), httponly=True,
                                    samesite="strict", secure=request.url.scheme == "https")
                return response
            else:
                error = "wrong token"
        return self.render(request, "login.html", status=401 if error else 200, page="login",
                           next=target, error=error)

    # -- actions (absent in read-only mode) -------------------------------------------

    async def _action(self, request: Request, run: Callable[[Any], str], back: str,
                      preview: Callable[[Any], str] | None = None) -> Response:
        """Check the request is ours, ask first when ``preview`` says what a bulk
        action will do (a second form with ``confirm=yes``), then ``run`` it."""
        form = await request.form()
        reason = security.cross_site_reason(request, _field(form, security.CSRF_FIELD), self.options.token_value())
        if reason:
            return self.render(request, "error.html", status=403, page="", title="Refused", message=reason)
        try:
            if preview is not None and _field(form, "confirm") != "yes":
                question = await run_in_threadpool(preview, form)
                fields = [(k, v) for k, v in form.multi_items() if k not in ("csrf", "confirm") and isinstance(v, str)]
                back_to = security.safe_next(_field(form, "back") or back)
                return self.render(request, "confirm.html", page="", question=question, action=request.url.path,
                                   fields=fields, back=back_to)
            notice = await run_in_threadpool(run, form)
        except JobNotFoundError as exc:
            return self.render(request, "error.html", status=404, page="", title="No such job", message=str(exc))
        except ScheduleNotFoundError as exc:
            return self.render(request, "error.html", status=404, page="", title="No such schedule",
                               message=str(exc))
        except (views.BadFilter, InvalidStateError, InvalidIdError, NuvomError) as exc:
            return self.render(request, "error.html", status=409 if isinstance(exc, InvalidStateError) else 400,
                               page="", title="Not done", message=str(exc))
        response = RedirectResponse(security.safe_next(_field(form, "back") or back), status_code=303)
        # what was done is shown once by the next page; a cookie, so no link can forge the message
        response.set_cookie(NOTICE_COOKIE, base64.urlsafe_b64encode(notice.encode()).decode().rstrip("="),
                            max_age=60,
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    async def retry_one(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]

        def run(form: Any) -> str:
            job = self.app.retry_job(job_id)
            return f"job {job.id} queued again (attempt {job.attempts + 1} of {job.max_attempts} allowed)"
        return await self._action(request, run, f"/jobs/{job_id}")

    async def cancel_one(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]

        def run(form: Any) -> str:
            job = self.app.cancel_job(job_id, "cancelled from the dashboard")
            if job.state == JobState.CANCELLED:
                return f"job {job.id} cancelled"
            return f"job {job.id} is {job.state}: asked to stop"
        return await self._action(request, run, f"/jobs/{job_id}")

    def _bulk(self, action: str, allowed: frozenset[JobState]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            def run(form: Any) -> str:
                filters = views.Filters.from_query(form, form.getlist("state"))
                report = views.bulk(self.app, filters.to_filter(), allowed, action, self.options.bulk_limit)
                text = f"{action}: {report['done']} job(s)"
                if report["skipped"]:
                    text += f", {report['skipped']} skipped (they changed state meanwhile)"
                if report["more"]:
                    text += f"; more match (at most {self.options.bulk_limit} per click): click again"
                return text

            def preview(form: Any) -> str:
                filters = views.Filters.from_query(form, form.getlist("state"))
                return views.bulk_preview(self.app, filters, allowed, action, self.options.bulk_limit)
            return await self._action(request, run, "/jobs", preview)
        return endpoint

    def _schedule_action(self, action: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            schedule_id = request.path_params["schedule_id"]

            def run(form: Any) -> str:
                reason = schedule_views.unavailable(self.app)
                if reason is not None:
                    raise NuvomError(reason)
                return schedule_views.change(self.app, schedule_id, action)

            def preview(form: Any) -> str:  # cancelling cannot be undone: ask first
                return schedule_views.cancel_question(self.app, schedule_id)
            return await self._action(request, run, f"/schedules/{schedule_id}",
                                      preview if action == "cancel" else None)
        return endpoint

    async def purge(self, request: Request) -> Response:
        def run(form: Any) -> str:
            deleted = views.purge(self.app, form.getlist("state"), (_field(form, "older_than") or "").strip())
            return f"purged {deleted} finished job(s)"

        def preview(form: Any) -> str:
            older_than = (_field(form, "older_than") or "").strip()
            views.purge_check(form.getlist("state"), older_than)
            return views.purge_preview(form.getlist("state"), older_than)
        return await self._action(request, run, "/jobs", preview)

    def routes(self) -> list[Any]:
        routes: list[Any] = [
            Route("/", self.overview),
            Route("/chart.svg", self.chart),
            Route("/jobs", self.jobs),
            Route("/jobs/{job_id}", self.job),
            Route("/dead", self.dead),
            Route("/schedules", self.schedules),
            Route("/schedules/{schedule_id}", self.schedule),
            Route("/login", self.login, methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
        if not self.options.read_only:
            routes += [
                Route("/jobs/{job_id}/retry", self.retry_one, methods=["POST"]),
                Route("/jobs/{job_id}/cancel", self.cancel_one, methods=["POST"]),
                Route("/actions/retry", self._bulk("retry", views.RETRYABLE), methods=["POST"]),
                Route("/actions/cancel", self._bulk("cancel", views.LIVE_STATES), methods=["POST"]),
                Route("/actions/purge", self.purge, methods=["POST"]),
                *(Route(f"/schedules/{{schedule_id}}/{action}", self._schedule_action(action), methods=["POST"])
                  for action in ("pause", "resume", "cancel")),
            ]
        return routes


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _notice(request: Request) -> str | None:
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return None
    try:
        # unpadded: "=" would make the cookie a quoted string, which not every client reads back
        return base64.urlsafe_b64decode(raw.strip('"').encode() + b"=" * (-len(raw) % 4)).decode()[:500]
    except (ValueError, UnicodeDecodeError):
        return None


def create_app(app: Nuvom, options: DashboardOptions | None = None) -> Starlette:
    """The dashboard for ``app``'s store as an ASGI app (serve it with any ASGI server).

    ``options`` default to the ``dashboard`` plugin settings' defaults; a
    token in them guards every page (see :mod:`nuvom_dashboard.security`)."""
    options = options or DashboardOptions()
    dashboard = Dashboard(app, options)
    return Starlette(routes=dashboard.routes(),
                     middleware=[Middleware(security.Guard, token=options.token_value())])

