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

    def submit(self, page: str, form_action: str, *, confirm: bool = False, **extra: str) -> Any:
        """Post the form of ``page`` whose action is ``form_action`` with the values the page put
        in it (its hidden CSRF field included), as a browser would; ``confirm``: then press
        "Yes" on the confirmation page a bulk action answers with."""
        answer = self._post_form(self.http.get(page).text, form_action, extra)
        if confirm:
            answer = self._post_form(answer.text, form_action, {})
        return answer

    def _post_form(self, html: str, form_action: str, extra: dict[str, str]) -> Any:
        start = html.index(f'action="{form_action}"')
        form = html[start:html.index("</form>", start)]
        fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
        assert dict(fields).get("csrf"), f"the form {form_action} has no CSRF value"
        data: dict[str, Any] = {}
        for name, value in fields:
            value = value.replace("&amp;", "&").replace("&#39;", "'").replace("&#34;", '"')
            data[name] = [*data[name], value] if isinstance(data.get(name), list) else \
                [data[name], value] if name in data else value
        return self.http.post(form_action, data={**data, **extra}, headers={"origin": self.origin},
                              follow_redirects=True)

    def act(self, path: str, data: dict[str, Any] | None = None, *, follow: bool = True, **headers: str) -> Any:
        form = {"csrf": self.csrf(), **(data or {})}
        return self.http.post(path, data=form, headers={"origin": self.origin, **headers}, follow_redirects=follow)




TASKS = ("billing.charge", "mail.send", "reports.build", "images.resize")
QUEUES = ("default", "mail", "reports")


def fill_store(app: Nuvom, total: int = 100_000, finished: int = 20_000, span_secs: float = 6 * 3600) -> None:
    """``total`` jobs created over the last ``span_secs``, the oldest ``finished``
    of them run to an end (one in ten failed, one in a hundred dead), the rest queued."""
    import time as _time

    from nuvom_kernel.models import Job

    start = _time.time() - span_secs
    step = span_secs / total
    batch = 5000
    for first in range(0, total, batch):
        app.queue.enqueue_many([
            Job(task=TASKS[i % 4], queue=QUEUES[i % 3], args=[i, "cus_" + str(i % 997)], kwargs={"cents": i % 5000},
                created_at=start + i * step)
            for i in range(first, min(total, first + batch))])
    queue, done = app.queue, 0
    while done < finished:
        claimed = queue.claim(list(QUEUES), min(500, finished - done), 60.0, "w-fill", start_now=500)
        if not claimed:
            break
        outcomes = []
        for k, job in enumerate(claimed, start=done):
            if k % 100 == 0:
                outcome = Outcome(kind="dead", reason="lease expired 4 times: the task probably kills its worker")
            elif k % 10 == 0:
                outcome = failure(f"gateway timeout for {job.args[1]}")
            else:
                outcome = Outcome(kind="succeeded", result={"ok": k})
            outcomes.append(Completion(job.id, job.token or 0, outcome))
        queue.exchange(outcomes, list(QUEUES), 0, 60.0, "w-fill")
        done += len(claimed)


def page_times(client: Client, paths: list[str], rounds: int) -> dict[str, tuple[float, float]]:
    """``{path: (p50, p95)}`` in seconds over ``rounds`` GETs of each path (after one warm-up)."""
    import time as _time

    result: dict[str, tuple[float, float]] = {}
    for path in paths:
        assert client.get(path).status_code == 200, path
        times = []
        for _ in range(rounds):
            began = _time.perf_counter()
            answer = client.get(path)
            times.append(_time.perf_counter() - began)
            assert answer.status_code == 200, path
        times.sort()
        result[path] = (times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.95))])
    return result


def sample_paths(app: Nuvom) -> list[str]:
    """The pages an operator opens, including a deep page of the list (keyset cursor)."""
    from nuvom_kernel.contracts import JobFilter
    from nuvom_kernel.models import JobState

    newest = app.query_jobs(limit=1).jobs[0]
    failed = app.query_jobs(JobFilter(states=frozenset({JobState.FAILED})), limit=1).jobs[0]
    cursor = None
    for _ in range(40):  # 40 pages of 50 in
        cursor = app.query_jobs(limit=50, cursor=cursor).cursor
    return ["/", "/chart.svg", "/jobs", "/jobs?state=failed", "/jobs?task=mail.send", "/jobs?task=mail.send&queue=mail",
            "/jobs?task=no.such.task", "/jobs?q=cus_42", "/jobs?since=1h", f"/jobs?cursor={cursor}",
            f"/jobs/{newest.id}", f"/jobs/{failed.id}", "/dead", "/schedules"]
