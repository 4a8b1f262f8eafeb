"""Helpers of the dashboard tests (conftest.py puts this directory on sys.path)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nuvom_dashboard import DashboardOptions, create_app
from starlette.testclient import TestClient

from nuvom_kernel.app import Nuvom
from nuvom_kernel.contracts import Completion
from nuvom_kernel.models import ErrorInfo, Outcome

ORIGIN = "http://127.0.0.1:8484"


def make_app(root: Path, backend: str = "sqlite") -> Nuvom:
    return Nuvom(root=root, environ={}, queue_backend=backend, result_backend=backend)


def run_to_end(app: Nuvom, outcomes: dict[str, Outcome], worker: str = "w-test") -> None:
    """Claim and finish jobs through the queue contract, as a worker would:
    ``outcomes`` maps job id to how its attempt ends (other claimed jobs go back)."""
    queue = app.queue
    queues = sorted({app.get_job(jid).queue for jid in outcomes})
    left = dict(outcomes)
    while left:
        claimed = queue.claim(queues, 100, 60.0, worker)
        assert claimed, f"jobs {sorted(left)} could not be claimed"
        mine = {job.id: job.token or 0 for job in claimed if job.id in left}
        assert queue.start(mine) == set(mine)
        for job in claimed:
            if job.id not in mine:
                queue.release(job.id, job.token or 0)
        queue.exchange([Completion(jid, token, left.pop(jid)) for jid, token in mine.items()], queues, 0, 60.0,
                       worker)


def failure(message: str = "bad input", attempt: int = 1) -> Outcome:
    return Outcome(kind="failed", error=ErrorInfo(
        attempt=attempt, type="builtins.ValueError", message=message,
        traceback=f'Traceback (most recent call last):\n  File "tasks.py", line 7, in charge\nValueError: {message}\n'))


class Client:
    """A TestClient that sends forms the way the dashboard's own pages do."""

    def __init__(self, app: Nuvom, options: DashboardOptions | None = None, base_url: str = ORIGIN) -> None:
        self.http = TestClient(create_app(app, options), base_url=base_url, follow_redirects=False)
        self.origin = base_url

    def get(self, path: str, **kw: Any) -> Any:
        return self.http.get(path, **kw)

    def csrf(self) -> str:
        if not self.http.cookies.get("nuvom_dashboard_csrf"):
            self.http.get("/login")  # any page hands out the browser's CSRF cookie
        token = self.http.cookies.get("nuvom_dashboard_csrf")
        assert token
        return token

    def submit(self, page: str, form_action: str, **extra: str) -> Any:
        """Post the form of ``page`` whose action is ``form_action`` with the values the page put
        in it (its hidden CSRF field included), as a browser would."""
        html = self.http.get(page).text
        start = html.index(f'action="{form_action}"')
        form = html[start:html.index("</form>", start)]
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
        assert fields.get("csrf"), f"the form {form_action} on {page} has no CSRF value"
        return self.http.post(form_action, data={**fields, **extra}, headers={"origin": self.origin},
                              follow_redirects=True)

    def act(self, path: str, data: dict[str, Any] | None = None, *, follow: bool = True, **headers: str) -> Any:
        form = {"csrf": self.csrf(), **(data or {})}
        return self.http.post(path, data=form, headers={"origin": self.origin, **headers}, follow_redirects=follow)


