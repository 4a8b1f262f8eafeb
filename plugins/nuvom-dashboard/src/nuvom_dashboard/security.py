"""Who may see the dashboard and who may act through it (S7, S8).

- **Hosts.** Without a token the dashboard answers only requests addressed to
  a loopback name (``Host: 127.0.0.1``, ``localhost``, ``[::1]``), so a web
  page cannot reach it through DNS rebinding.
- **Token.** With a token, every page needs it: once per browser through the
  login form (an HttpOnly, SameSite=Strict cookie keeps a digest of it, never
  the token), or ``Authorization: Bearer <token>`` from scripts.
- **Actions** are POST forms that must carry the browser's CSRF token (a
  random value in a SameSite=Strict cookie, repeated in the form) and come
  from the dashboard's own origin (``Origin``, else ``Referer``).  A bearer
  request needs neither: a browser never adds that header by itself.
- Every response forbids framing (no clickjacking of the action buttons) and
  scripts (the dashboard has none).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

from nuvom_dashboard.options import is_loopback

AUTH_COOKIE = "nuvom_dashboard_auth"
CSRF_COOKIE = "nuvom_dashboard_csrf"
CSRF_FIELD = "csrf"
#: paths served without the token: the login form and the stylesheet it uses
PUBLIC_PATHS = ("/login", "/static/")
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def session_digest(token: str) -> str:
    """What the auth cookie holds: proves the token was given, cannot be turned back into it."""
    return hmac.new(token.encode(), b"nuvom-dashboard-session", hashlib.sha256).hexdigest()


def bearer_ok(request: Request, token: str | None) -> bool:
    if token is None:
        return False
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def authenticated(request: Request, token: str | None) -> bool:
    if token is None or bearer_ok(request, token):
        return True
    cookie = request.cookies.get(AUTH_COOKIE, "")
    return hmac.compare_digest(cookie.encode(), session_digest(token).encode())


def host_allowed(request: Request, token: str | None) -> bool:
    if token is not None:
        return True
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return bool(name) and is_loopback(name)


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def cross_site_reason(request: Request, form_csrf: str | None, token: str | None) -> str | None:
    """Why a POST is refused as possibly cross-site, or ``None`` if it is ours."""
    if token is not None and bearer_ok(request, token):
        return None
    expected = own_origin(request)
    origin = request.headers.get("origin")
    if origin is not None:
        if origin != expected:
            return f"the request came from {origin}, not from this dashboard ({expected})"
    else:
        referer = request.headers.get("referer")
        if referer is None:
            return "the request says neither its Origin nor its Referer; send the form from the dashboard"
        parts = urlsplit(referer)
        if f"{parts.scheme}://{parts.netloc}" != expected:
            return "the request's Referer is not a page of this dashboard"
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not form_csrf or not hmac.compare_digest(cookie.encode(), form_csrf.encode()):
        return "the form's CSRF token is missing or stale; reload the page and try again"
    return None


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Guard(BaseHTTPMiddleware):
    """Host check, token check, the CSRF cookie and the security headers."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not host_allowed(request, self.token):
            return self._headers(PlainTextResponse(
                "this dashboard answers only requests to a loopback address (127.0.0.1, localhost, [::1]); "
                "to serve it to other hosts set NUVOM_DASHBOARD__TOKEN and --host", status_code=400))
        path = request.url.path
        if not path.startswith(PUBLIC_PATHS) and not authenticated(request, self.token):
            if request.method == "GET" and "authorization" not in request.headers:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return self._headers(RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303))
            return self._headers(PlainTextResponse("a token is needed: log in at /login or send "
                                                   "Authorization: Bearer <token>", status_code=401))
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh = csrf is None or len(csrf) < 32
        request.state.csrf = secrets.token_urlsafe(32) if fresh else csrf
        response = await call_next(request)
        if fresh:
            response.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return self._headers(response)

    @staticmethod
    def _headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response
