"""Retry, cancel and purge over HTTP; CSRF, Origin, token, host and read-only rules (S7, S8)."""

from __future__ import annotations

import re

import pytest
from dashboard_support import ORIGIN, Client, failure, run_to_end
from nuvom_dashboard import DashboardOptions
from nuvom_dashboard.options import check_binding, is_loopback
from nuvom_dashboard.security import AUTH_COOKIE, safe_next
from pydantic import SecretStr

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState

TOKEN = "s3cret-token-for-tests-0123456789"


def state(app: Nuvom, job_id: str) -> str:
    return app.get_job(job_id).state.value


# -- one job --------------------------------------------------------------------------


def test_retry_a_failed_job_and_see_what_was_done(store: Nuvom, client: Client) -> None:
    failed = store.ids["failed"]  # type: ignore[attr-defined]
    answer = client.act(f"/jobs/{failed}/retry", follow=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/jobs/{failed}"
    assert state(store, failed) == "queued"
    page = client.get(f"/jobs/{failed}").text
    assert f"job {failed} queued again (attempt 2 of 2 allowed)" in page
    assert "queued again" not in client.get(f"/jobs/{failed}").text  # the notice is shown once


def test_forms_on_the_pages_carry_the_csrf_value(store: Nuvom, client: Client) -> None:
    failed = store.ids["failed"]  # type: ignore[attr-defined]
    assert "queued again" in client.submit(f"/jobs/{failed}", f"/jobs/{failed}/retry").text
    queued = store.ids["queued"]  # type: ignore[attr-defined]
    assert f"job {queued} cancelled" in client.submit(f"/jobs/{queued}", f"/jobs/{queued}/cancel").text
    assert "retry: 1 job(s)" in client.submit("/dead", "/actions/retry", confirm=True).text
    page = client.submit("/jobs?state=queued", "/actions/cancel", confirm=True).text
    assert "cancel: 8 job(s)" in page
    assert "purged 9 finished job(s)" in client.submit("/jobs", "/actions/purge", confirm=True, state="cancelled").text


@pytest.mark.parametrize(("page", "action", "extra", "question"), [
    ("/jobs?queue=mail", "/actions/cancel", {}, "Cancel 3 claimed, queued, running, scheduled job(s) (queue mail)?"),
    ("/jobs", "/actions/cancel", {}, "Cancel 7 claimed, queued, running, scheduled job(s) (no other filter: all of them)?"),
    ("/dead", "/actions/retry", {}, "Retry 1 dead job(s) (no other filter: all of them)?"),
    ("/jobs", "/actions/purge", {"state": "failed", "older_than": "7d"},
     "Delete failed job(s) that finished more than 7d ago? This cannot be undone."),
])
def test_bulk_actions_ask_first_and_change_nothing_until_confirmed(store: Nuvom, client: Client, page: str,
                                                                   action: str, extra: dict[str, str],
                                                                   question: str) -> None:
    before = store.jobs.counts()
    asked = client.submit(page, action, **extra)
    assert asked.status_code == 200 and question in asked.text, asked.text[asked.text.find("<main>"):][:600]
    assert 'id="confirm"' in asked.text and store.jobs.counts() == before


def test_bulk_preview_says_when_more_match_than_one_click_changes(store: Nuvom) -> None:
    client = Client(store, DashboardOptions(bulk_limit=2))
    asked = client.submit("/jobs?queue=billing", "/actions/cancel")
    assert "Cancel the newest 2 of more than 2 claimed, queued, running, scheduled job(s) (queue billing)?" in asked.text


def test_cancel_a_queued_job(store: Nuvom, client: Client) -> None:
    queued = store.ids["queued"]  # type: ignore[attr-defined]
    page = client.act(f"/jobs/{queued}/cancel")
    assert page.status_code == 200 and f"job {queued} cancelled" in page.text
    assert state(store, queued) == "cancelled"
    assert store.get_job(queued).reason == "cancelled from the dashboard"


def test_cancel_a_running_job_asks_it_to_stop(store: Nuvom, client: Client) -> None:
    job = store.queue.claim(["billing"], 1, 60.0, "w")[0]
    store.queue.start({job.id: job.token or 0})
    page = client.act(f"/jobs/{job.id}/cancel")
    assert "is running: asked to stop" in page.text
    assert store.get_job(job.id).cancel_requested


@pytest.mark.parametrize(("kind", "action", "message"), [
    ("succeeded", "retry", "only failed, dead or cancelled jobs can be retried"),
    ("queued", "retry", "it will run, or is running, already"),
    ("failed", "cancel", "is already failed"),
])
def test_an_action_that_does_not_fit_the_state_is_refused(store: Nuvom, client: Client, kind: str, action: str,
                                                          message: str) -> None:
    job_id = store.ids[kind]  # type: ignore[attr-defined]
    page = client.act(f"/jobs/{job_id}/{action}")
    assert page.status_code == 409 and message in page.text
    assert state(store, job_id) == kind


def test_action_on_an_unknown_job_is_404(client: Client) -> None:
    assert client.act("/jobs/0123456789abcdef/retry").status_code == 404


# -- by filter ------------------------------------------------------------------------


def test_retry_by_filter_touches_only_matching_jobs(store: Nuvom, client: Client) -> None:
    other = store.enqueue(Job(task="report.build", queue="reports"))
    run_to_end(store, {other.id: failure("disk full")})
    page = client.act("/actions/retry", {"task": "billing.charge", "back": "/jobs?task=billing.charge", "confirm": "yes"})
    assert "retry: 1 job(s)" in page.text
    assert state(store, store.ids["failed"]) == "queued"  # type: ignore[attr-defined]
    assert state(store, other.id) == "failed" and state(store, store.ids["dead"]) == "dead"  # type: ignore[attr-defined]
    # dead letters: "retry matching" on /dead retries the dead ones
    page = client.act("/actions/retry", {"state": "dead", "back": "/dead", "confirm": "yes"})
    assert "retry: 1 job(s)" in page.text and state(store, store.ids["dead"]) == "queued"  # type: ignore[attr-defined]


def test_cancel_by_filter(store: Nuvom, client: Client) -> None:
    page = client.act("/actions/cancel", {"queue": "mail", "confirm": "yes"})
    assert "cancel: 3 job(s)" in page.text
    counts = store.jobs.counts()
    assert counts["mail"] == {"cancelled": 3, "dead": 1} and counts["billing"]["queued"] == 4


def test_bulk_action_with_no_allowed_state_says_so(client: Client) -> None:
    page = client.act("/actions/retry", {"state": "queued", "confirm": "yes"})
    assert page.status_code == 400
    assert "nothing to retry: only cancelled, dead, failed jobs can be retried; change the state filter" in page.text


def test_bulk_action_stops_at_the_limit_and_says_more_match(store: Nuvom) -> None:
    client = Client(store, DashboardOptions(bulk_limit=2))
    page = client.act("/actions/cancel", {"queue": "billing", "confirm": "yes"})
    assert "cancel: 2 job(s); more match (at most 2 per click): click again" in page.text
    page = client.act("/actions/cancel", {"queue": "billing", "confirm": "yes"})
    assert "cancel: 2 job(s)" in page.text and "more match" not in page.text
    assert store.jobs.counts()["billing"].get("queued", 0) == 0


def test_purge_by_state_and_age(store: Nuvom, client: Client) -> None:
    page = client.act("/actions/purge", {"state": "failed", "older_than": "1h", "confirm": "yes"})
    assert "purged 0 finished job(s)" in page.text  # it failed just now
    page = client.act("/actions/purge", {"state": ["failed", "dead"], "confirm": "yes"})
    assert "purged 2 finished job(s)" in page.text
    counts = store.jobs.counts()
    assert "failed" not in counts["billing"] and "dead" not in counts["mail"]
    assert counts["billing"]["succeeded"] == 1


@pytest.mark.parametrize(("data", "message"), [
    ({"state": "queued"}, "purge never deletes live jobs (queued)"),
    ({"older_than": "soon"}, "older than: invalid duration &#39;soon&#39;"),
])
def test_purge_refuses_live_states_and_bad_ages(store: Nuvom, client: Client, data: dict[str, str],
                                                message: str) -> None:
    page = client.act("/actions/purge", data)  # refused before the confirmation is even asked
    assert page.status_code == 400 and message in page.text
    assert sum(sum(c.values()) for c in store.jobs.counts().values()) == 10


# -- cross-site requests (S8) ---------------------------------------------------------


@pytest.mark.parametrize(("headers", "csrf", "reason"), [
    ({"origin": "http://evil.example"}, True, "the request came from http://evil.example"),
    ({"origin": "null"}, True, "the request came from null"),
    ({}, True, "neither its Origin nor its Referer"),
    ({"referer": "http://evil.example/page"}, True, "Referer is not a page of this dashboard"),
    ({"origin": ORIGIN}, False, "CSRF token is missing or stale"),
])
def test_cross_site_actions_are_refused(store: Nuvom, client: Client, headers: dict[str, str], csrf: bool,
                                        reason: str) -> None:
    failed = store.ids["failed"]  # type: ignore[attr-defined]
    form = {"csrf": client.csrf()} if csrf else {}
    answer = client.http.post(f"/jobs/{failed}/retry", data=form, headers=headers)
    assert answer.status_code == 403 and reason in answer.text
    assert state(store, failed) == "failed"


def test_a_forged_csrf_value_is_refused(store: Nuvom, client: Client) -> None:
    client.csrf()
    answer = client.http.post("/actions/cancel", data={"csrf": "x" * 43}, headers={"origin": ORIGIN})
    assert answer.status_code == 403 and store.jobs.counts()["billing"]["queued"] == 4


def test_same_origin_referer_is_enough_without_origin(store: Nuvom, client: Client) -> None:
    failed = store.ids["failed"]  # type: ignore[attr-defined]
    answer = client.http.post(f"/jobs/{failed}/retry", data={"csrf": client.csrf()},
                              headers={"referer": f"{ORIGIN}/jobs/{failed}"})
    assert answer.status_code == 303 and state(store, failed) == "queued"


def test_cookies_are_strict_and_pages_cannot_be_framed(client: Client) -> None:
    page = client.get("/")
    cookie = page.headers["set-cookie"].lower()
    assert "nuvom_dashboard_csrf=" in cookie and "samesite=strict" in cookie and "httponly" in cookie
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all


# -- read-only ---------------------------------------------------------------------------


def test_read_only_serves_no_action_at_all(store: Nuvom) -> None:
    client = Client(store, DashboardOptions(read_only=True))
    failed = store.ids["failed"]  # type: ignore[attr-defined]
    for path in ("/", "/jobs", f"/jobs/{failed}", "/dead"):
        html = client.get(path).text
        assert 'method="post"' not in html and "<button" not in html.replace('<button type="submit">Filter', "")
    assert "read-only" in client.get("/").text
    for path in (f"/jobs/{failed}/retry", f"/jobs/{failed}/cancel", "/actions/retry", "/actions/cancel",
                 "/actions/purge"):
        assert client.act(path, follow=False).status_code in (404, 405), path
    assert state(store, failed) == "failed"


# -- token and hosts (S7) ---------------------------------------------------------------


def test_loopback_dashboard_refuses_other_host_names(store: Nuvom) -> None:
    """Without a token only loopback names are served: a rebinding DNS name is refused."""
    for base, code in (("http://127.0.0.1:8484", 200), ("http://localhost:8484", 200), ("http://[::1]:8484", 200),
                       ("http://attacker.example:8484", 400), ("http://192.168.1.10:8484", 400)):
        assert Client(store, base_url=base).get("/").status_code == code, base


def test_token_guards_every_page(store: Nuvom) -> None:
    client = Client(store, DashboardOptions(token=SecretStr(TOKEN), host="0.0.0.0"),
                    base_url="http://dash.internal:8484")
    client.origin = "http://dash.internal:8484"
    for path in ("/", "/jobs", "/chart.svg", f"/jobs/{store.ids['failed']}", "/dead"):  # type: ignore[attr-defined]
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
    back = client.get("/jobs?state=failed&q=charge")
    assert back.headers["location"] == "/login?next=%2Fjobs%3Fstate%3Dfailed%26q%3Dcharge"  # the filters survive
    assert 'name="next" value="/jobs?state=failed&amp;q=charge"' in client.get(back.headers["location"]).text
    failed = store.ids["failed"]  # type: ignore[attr-defined]
    assert client.act(f"/jobs/{failed}/retry", follow=False).status_code == 401
    assert client.get("/static/dashboard.css").status_code == 200  # the login page's stylesheet
    wrong = client.act("/login", {"token": "wrong-token-wrong-token", "next": "/jobs"}, follow=False)
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    login = client.act("/login", {"token": TOKEN, "next": "/jobs?state=failed"}, follow=False)
    assert login.status_code == 303 and login.headers["location"] == "/jobs?state=failed"
    assert TOKEN not in login.headers["set-cookie"]  # the cookie holds a digest, not the token
    assert client.http.cookies.get(AUTH_COOKIE)
    assert client.get("/jobs").status_code == 200
    assert client.act(f"/jobs/{failed}/retry").status_code == 200 and state(store, failed) == "queued"


def test_scripts_use_a_bearer_token(store: Nuvom) -> None:
    client = Client(store, DashboardOptions(token=SecretStr(TOKEN)))
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert client.get("/jobs", headers=auth).status_code == 200
    assert client.get("/jobs", headers={"authorization": "Bearer nope"}).status_code == 401
    failed = store.ids["failed"]  # type: ignore[attr-defined]
    answer = client.http.post(f"/jobs/{failed}/retry", headers=auth)  # a browser never adds this header itself
    assert answer.status_code == 303 and state(store, failed) == "queued"


def test_login_goes_only_to_local_pages() -> None:
    assert safe_next("/jobs?state=failed") == "/jobs?state=failed"
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "", None, "jobs"):
        assert safe_next(target) == "/"


def test_binding_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.5")
    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", TOKEN)
    with pytest.raises(ValueError, match=r"serving the dashboard on 0.0.0.0 \(not loopback\) needs a token: set NUVOM_DASHBOARD__TOKEN"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ValueError, match="token is 5 characters long; use at least 16"):
        check_binding("0.0.0.0", "short")


def test_job_states_enum_is_complete_in_the_filter_form(client: Client) -> None:
    html = client.get("/jobs").text
    assert re.findall(r'name="state" value="(\w+)"', html)[:len(JobState)] == [s.value for s in JobState]
