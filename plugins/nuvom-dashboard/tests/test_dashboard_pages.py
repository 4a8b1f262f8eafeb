"""Every page over HTTP, on a real store: what it shows and how it refuses bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dashboard_support import Client, failure, make_app, run_to_end
from nuvom_dashboard import DashboardOptions

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, Outcome


def ids_in(html: str) -> list[str]:
    return re.findall(r'class="jobid" href="/jobs/([^"]+)"', html)


def test_overview_shows_depth_by_queue_and_state_and_workers(client: Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    depth = html[html.index('id="depth"'):html.index("</table>", html.index('id="depth"'))]
    # billing: 4 queued, 1 succeeded, 1 failed; mail: 3 queued, 1 dead -- each count links to its list
    assert '<a href="/jobs?queue=billing&amp;state=queued">4</a>' in depth
    assert '<a href="/jobs?queue=billing&amp;state=succeeded">1</a>' in depth
    assert '<a href="/jobs?queue=billing&amp;state=failed">1</a>' in depth
    assert '<a href="/jobs?queue=mail&amp;state=dead">1</a>' in depth
    assert '<a href="/jobs?queue=mail&amp;state=queued">3</a>' in depth
    assert "<title>queued: 4</title>" in depth  # the depth bar, server-rendered SVG
    workers = html[html.index('id="workers"'):]
    assert "web1-42-abc" in workers and "w-running" in workers and "billing, mail" in workers
    assert '<img src="/chart.svg"' in html
    assert "<script" not in html


def test_chart_counts_finished_jobs_by_minute(client: Client) -> None:
    svg = client.get("/chart.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "succeeded: 1</text>" in svg.text and "failed or dead: 2</text>" in svg.text
    assert re.search(r"<title>\d\d:\d\d UTC: 1 succeeded</title>", svg.text)
    assert re.search(r"<title>\d\d:\d\d UTC: 2 failed or dead</title>", svg.text)


def test_stale_worker_is_marked(store: Nuvom, client: Client) -> None:
    info = store.workers.list_workers()[0]
    store.workers.register_worker(info.model_copy(update={"heartbeat_at": info.heartbeat_at - 3600}))
    assert "w-stale" in client.get("/").text


def test_pages_survive_a_restart_of_the_dashboard(store: Nuvom, tmp_path: Path) -> None:
    before = Client(store).get("/jobs").text
    fresh = make_app(tmp_path)  # a new process would build exactly this: nothing carried over
    try:
        after = Client(fresh).get("/jobs").text
        assert ids_in(after) == ids_in(before) and len(ids_in(after)) == 10
        assert "web1-42-abc" in Client(fresh).get("/").text
    finally:
        fresh.close()


@pytest.mark.parametrize(("query", "expected"), [
    ("state=failed", ["failed"]),
    ("state=dead&state=succeeded", ["dead", "succeeded"]),
    ("task=mail.send&state=dead", ["dead"]),
    ("queue=billing&state=succeeded", ["succeeded"]),
])
def test_jobs_list_filters_by_state_task_and_queue(store: Nuvom, client: Client, query: str,
                                                   expected: list[str]) -> None:
    page = client.get(f"/jobs?{query}")
    assert page.status_code == 200
    assert sorted(ids_in(page.text)) == sorted(store.ids[k] for k in expected)  # type: ignore[attr-defined]


def test_jobs_list_filters_by_time_and_search(store: Nuvom, client: Client) -> None:
    old = store.enqueue(Job(task="report.build", created_at=1_700_000_000.0))
    assert ids_in(client.get("/jobs?until=2024-01-01T00:00:00").text) == [old.id]
    assert old.id not in ids_in(client.get("/jobs?since=1h").text)
    assert len(ids_in(client.get("/jobs?since=1h").text)) == 10
    assert ids_in(client.get("/jobs?q=REPORT").text) == [old.id]  # case-insensitive task substring
    assert ids_in(client.get(f"/jobs?q={old.id[3:12]}").text) == [old.id]  # part of an id


def test_jobs_list_pages_with_a_keyset_cursor(store: Nuvom) -> None:
    client = Client(store, DashboardOptions(page_size=4))
    seen: list[str] = []
    url: str | None = "/jobs"
    while url:
        html = client.get(url).text
        seen += ids_in(html)
        found = re.search(r'href="([^"]+)" id="next"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 10 and len(set(seen)) == 10
    assert seen == [j.id for j in store.query_jobs(limit=100).jobs]  # newest first, nothing skipped
    filtered = client.get("/jobs?state=queued").text
    assert "state=queued" in re.search(r'href="([^"]+)" id="next"', filtered).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize(("query", "message"), [
    ("state=bogus", "unknown state &#39;bogus&#39;: use one of queued"),
    ("since=yesterday", "since: invalid time &#39;yesterday&#39;: use an ISO date-time"),
    ("queue=../etc", "invalid queue name"),
    ("cursor=nonsense", "invalid cursor &#39;nonsense&#39;: pass the cursor a previous page returned"),
])
def test_bad_filters_are_named(client: Client, query: str, message: str) -> None:
    page = client.get(f"/jobs?{query}")
    assert page.status_code == 400
    assert message in page.text


def test_job_page_shows_arguments_result_errors_history_and_progress(store: Nuvom, client: Client) -> None:
    ok = client.get(f"/jobs/{store.ids['succeeded']}").text  # type: ignore[attr-defined]
    assert "&#34;currency&#34;: &#34;EUR&#34;" in ok or "&quot;currency&quot;: &quot;EUR&quot;" in ok
    assert 'id="result"' in ok and "charged" in ok
    assert 'http-equiv="refresh"' not in ok  # finished: nothing left to watch
    failed = client.get(f"/jobs/{store.ids['failed']}").text  # type: ignore[attr-defined]
    assert "builtins.ValueError</b>: card declined" in failed and "line 7, in charge" in failed
    history = failed[failed.index('id="history"'):]
    assert history.index("s-queued") < history.index("s-claimed") < history.index("s-running") < history.index("s-failed")
    assert 'id="retry"' in failed and 'id="cancel"' not in failed
    job = store.queue.claim(["billing"], 1, 60.0, "w")[0]
    store.queue.start({job.id: job.token or 0})
    store.jobs.set_progress(job.id, job.token or 0, {"done": 3, "total": 4})
    running = client.get(f"/jobs/{job.id}").text
    assert '<progress max="1" value="0.75">' in running and "75.0%" in running
    assert 'http-equiv="refresh" content="2"' in running and 'id="cancel"' in running


def test_job_page_of_a_job_with_several_attempts_lists_each(store: Nuvom, client: Client) -> None:
    job = store.enqueue(Job(task="mail.send", queue="mail", max_retries=1))
    run_to_end(store, {job.id: Outcome(kind="retry", error=failure("smtp down", 1).error)})
    run_to_end(store, {job.id: failure("smtp still down", 2)})
    html = client.get(f"/jobs/{job.id}").text
    assert html.count('<details class="attempt"') == 2
    assert html.index("attempt 2 ·") < html.index("attempt 1 ·")  # newest first, the newest open
    assert "smtp down" in html and "smtp still down" in html


@pytest.mark.parametrize("job_id", ["0123456789abcdef", "CON", "a%20b"])
def test_unknown_or_invalid_job_is_404(client: Client, job_id: str) -> None:
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 404 and "No such job" in page.text


def test_dead_letters_lists_only_dead_jobs_with_their_reason(store: Nuvom, client: Client) -> None:
    page = client.get("/dead")
    assert page.status_code == 200
    assert ids_in(page.text) == [store.ids["dead"]]  # type: ignore[attr-defined]
    assert "unknown task &#39;mail.send&#39;" in page.text
    assert ids_in(client.get("/dead?state=failed").text) == [store.ids["dead"]]  # the page is dead letters only


def test_values_from_the_store_are_escaped(store: Nuvom, client: Client) -> None:
    job = store.enqueue(Job(task="x.<script>alert(1)</script>", args=["<img src=x onerror=alert(1)>"]))
    for path in ("/jobs", f"/jobs/{job.id}"):
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html


@pytest.mark.parametrize("backend", ["memory", "file", "sqlite"])
def test_every_page_works_on_every_builtin_backend(tmp_path: Path, backend: str) -> None:
    app = make_app(tmp_path, backend)
    try:
        stored = app.enqueue_many([Job(task="t.a", args=[1]), Job(task="t.b", queue="other")])
        run_to_end(app, {stored[0].id: failure("nope")})
        client = Client(app)
        for path in ("/", "/chart.svg", "/jobs", "/jobs?state=failed&q=t.a", f"/jobs/{stored[0].id}", "/dead"):
            assert client.get(path).status_code == 200, path
        assert ids_in(client.get("/jobs?state=failed").text) == [stored[0].id]
        assert client.act(f"/jobs/{stored[0].id}/retry").status_code == 200
        assert app.get_job(stored[0].id).state.value == "queued"
    finally:
        app.close()


def test_static_stylesheet_is_ours(client: Client) -> None:
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and "Nuvom dashboard" in css.text
