"""The schedules pages and their pause, resume and cancel actions over HTTP (S7, S8 rules too)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from dashboard_support import ORIGIN, Client, make_app
from nuvom_backend_memory import MemoryBackend
from nuvom_dashboard import DashboardOptions

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job
from nuvom_kernel.schedules import Schedule, ScheduleState, fire_job_id
from nuvom_kernel.task import Task

#: 2026-07-01 12:00 UTC (summer: Paris is UTC+2) and 2026-12-01 12:00 UTC (winter: UTC+1)
SUMMER = datetime(2026, 7, 1, 12, tzinfo=timezone.utc).timestamp()
WINTER = datetime(2026, 12, 1, 12, tzinfo=timezone.utc).timestamp()


def schedule_ids(html: str) -> list[str]:
    return re.findall(r'class="scheduleid" href="/schedules/([^"]+)"', html)


def stored(app: Nuvom, sid: str) -> Schedule:
    found = app.schedules.get_schedule(sid)
    assert found is not None
    return found


def add_cron(app: Nuvom, sid: str, cron: str, zone: str, after: float, task: str = "reports.build") -> Schedule:
    """A cron schedule whose next fire is the first occurrence after ``after`` (a fixed date)."""
    schedule = Schedule(id=sid, task=task, kind="cron", cron=cron, timezone=zone)
    schedule.next_fire_at = app.plugins.schedule_next_fire(schedule, after)
    return app.schedules.add_schedule(schedule)


@pytest.fixture
def schedules(store: Nuvom) -> dict[str, str]:
    @store.task(name="reports.build")
    def build(kind: str) -> str:
        return kind

    task: Task[str] = build  # type: ignore[assignment]
    every = task.schedule("hourly", interval=3600)
    paris = add_cron(store, "paris-morning", "0 9 * * *", "Europe/Paris", WINTER)
    summer = add_cron(store, "paris-summer", "0 9 * * *", "Europe/Paris", SUMMER)
    ny = add_cron(store, "ny-close", "0 16 * * 1-5", "America/New_York", WINTER)
    paused = add_cron(store, "paused-one", "*/5 * * * *", "UTC", WINTER)
    store.schedules.set_schedule_state(paused.id, ScheduleState.PAUSED)
    done = add_cron(store, "done-one", "0 0 * * *", "UTC", WINTER)
    store.schedules.set_schedule_state(done.id, ScheduleState.CANCELLED)
    # one fire of paris-morning, as a scheduler would do it (the store's atomic fire)
    first = paris.next_fire_at
    assert first is not None
    nxt = store.plugins.schedule_next_fire(paris, first)
    assert store.schedules.fire_schedule(paris.id, first, [Job(id=fire_job_id(paris.id, first), task=paris.task)],
                                         nxt)
    return {"every": every.id, "paris": paris.id, "summer": summer.id, "ny": ny.id, "paused": paused.id,
            "cancelled": done.id}


def test_list_shows_every_schedule_with_times_in_its_own_zone(client: Client, schedules: dict[str, str]) -> None:
    page = client.get("/schedules")
    assert page.status_code == 200
    html = page.text
    assert sorted(schedule_ids(html)) == sorted(schedules.values())
    rows = {sid: html[html.index(f'href="/schedules/{sid}"'):].split("</tr>", 1)[0] for sid in schedules.values()}
    paris = rows[schedules["paris"]]
    assert "cron 0 9 * * *" in paris and "Europe/Paris" in paris and "ss-active" in paris
    # next fire: 2026-12-03 09:00 Paris (the 2nd fired), last fire 2026-12-02 09:00 Paris (= 08:00 UTC)
    assert "2026-12-03 09:00:00 CET (+01:00)" in paris and "2026-12-02 09:00:00 CET (+01:00)" in paris
    assert 'title="2026-12-02 08:00:00.000Z"' in paris  # UTC beside it
    assert "2026-07-02 09:00:00 CEST (+02:00)" in rows[schedules["summer"]]  # summer time: another offset
    assert "2026-12-01 16:00:00 EST (-05:00)" in rows[schedules["ny"]]
    assert "every 3600 s" in rows[schedules["every"]]
    assert "ss-paused" in rows[schedules["paused"]] and "ss-cancelled" in rows[schedules["cancelled"]]
    # the buttons a state allows, nothing for a schedule that never fires again
    assert re.findall(r'id="(\w+)-paris-morning"', paris) == ["pause", "cancel"]
    assert re.findall(r'id="(\w+)-paused-one"', rows[schedules["paused"]]) == ["resume", "cancel"]
    assert 'method="post"' not in rows[schedules["cancelled"]]
    assert '<td class="n">1</td>' in paris  # fired once
    assert "<script" not in html


def test_schedule_page_shows_the_definition_and_the_next_occurrences(client: Client,
                                                                      schedules: dict[str, str]) -> None:
    html = client.get(f"/schedules/{schedules['paris']}").text
    assert 'id="next-fire">2026-12-03 09:00:00 CET (+01:00)' in html
    upcoming = re.findall(r"<li>([^<]+) <span", html[html.index('id="upcoming"'):])
    assert upcoming == [f"2026-12-0{d} 09:00:00 CET (+01:00)" for d in range(3, 8)]
    assert "reports.build" in html and 'id="pause-paris-morning"' in html
    assert f'href="/jobs?q={schedules["paris"]}"' in html
    ny = client.get(f"/schedules/{schedules['ny']}").text  # weekdays only: 1 Dec 2026 is a Tuesday
    days = re.findall(r"<li>2026-12-(\d\d) 16:00:00 EST", ny)
    assert days == ["01", "02", "03", "04", "07"]
    hourly = client.get(f"/schedules/{schedules['every']}").text
    assert "&#34;hourly&#34;" in hourly or "&quot;hourly&quot;" in hourly


@pytest.mark.parametrize("sid", ["no-such-schedule", "CON", "a%20b"])
def test_unknown_or_invalid_schedule_is_404(client: Client, schedules: dict[str, str], sid: str) -> None:
    page = client.get(f"/schedules/{sid}")
    assert page.status_code == 404 and "No such schedule" in page.text


def test_pause_and_resume_from_the_page(store: Nuvom, client: Client, schedules: dict[str, str]) -> None:
    sid = schedules["paris"]
    page = client.submit(f"/schedules/{sid}", f"/schedules/{sid}/pause")
    assert page.status_code == 200 and f"schedule {sid} paused: nothing fires until it is resumed" in page.text
    assert stored(store, sid).state == ScheduleState.PAUSED
    assert sid not in [s.id for s in store.schedules.due_schedules(WINTER + 10 * 86400, 100)]
    page = client.submit(f"/schedules/{sid}", f"/schedules/{sid}/resume")
    assert f"schedule {sid} resumed: next fire 2026-12-03 09:00:00 CET (+01:00)" in page.text
    assert stored(store, sid).state == ScheduleState.ACTIVE
    # from the list page, back to the list
    answer = client.act(f"/schedules/{sid}/pause", {"back": "/schedules"}, follow=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/schedules"


def test_cancel_asks_first_then_cancels(store: Nuvom, client: Client, schedules: dict[str, str]) -> None:
    sid = schedules["ny"]
    asked = client.submit("/schedules", f"/schedules/{sid}/cancel")
    assert asked.status_code == 200 and 'id="confirm"' in asked.text
    assert f"Cancel schedule {sid} (reports.build, cron 0 16 * * 1-5)? It never fires again" in asked.text
    assert stored(store, sid).state == ScheduleState.ACTIVE  # nothing done yet
    done = client.submit("/schedules", f"/schedules/{sid}/cancel", confirm=True)
    assert f"schedule {sid} cancelled: it never fires again" in done.text
    assert stored(store, sid).state == ScheduleState.CANCELLED


@pytest.mark.parametrize(("which", "action", "message"), [
    ("cancelled", "resume", "is cancelled: it cannot be resumed; allowed: nothing (it never fires again)"),
    ("cancelled", "cancel", "is cancelled: it cannot be cancelled"),
    ("paused", "pause", "is paused: it cannot be paused; allowed: resume, cancel"),
    ("paris", "resume", "is active: it cannot be resumed; allowed: pause, cancel"),
])
def test_an_action_that_does_not_fit_the_state_is_refused(store: Nuvom, client: Client, schedules: dict[str, str],
                                                          which: str, action: str, message: str) -> None:
    sid = schedules[which]
    before = stored(store, sid).state
    page = client.act(f"/schedules/{sid}/{action}", {"confirm": "yes"})
    assert page.status_code == 409 and message in page.text
    assert stored(store, sid).state == before


def test_action_on_an_unknown_schedule_is_404(client: Client, schedules: dict[str, str]) -> None:
    assert client.act("/schedules/nope-123/pause").status_code == 404


@pytest.mark.parametrize(("headers", "csrf"), [
    ({"origin": "http://evil.example"}, True),
    ({}, True),
    ({"origin": ORIGIN}, False),
])
def test_cross_site_schedule_actions_are_refused(store: Nuvom, client: Client, schedules: dict[str, str],
                                                 headers: dict[str, str], csrf: bool) -> None:
    sid = schedules["paris"]
    for action in ("pause", "cancel"):
        form = {"csrf": client.csrf(), "confirm": "yes"} if csrf else {"confirm": "yes"}
        answer = client.http.post(f"/schedules/{sid}/{action}", data=form, headers=headers)
        assert answer.status_code == 403, action
    assert stored(store, sid).state == ScheduleState.ACTIVE


def test_read_only_serves_no_schedule_action(store: Nuvom, schedules: dict[str, str]) -> None:
    client = Client(store, DashboardOptions(read_only=True))
    for path in ("/schedules", f"/schedules/{schedules['paris']}", f"/schedules/{schedules['paused']}"):
        page = client.get(path)
        assert page.status_code == 200 and 'method="post"' not in page.text and "<button" not in page.text, path
    for sid, action in ((schedules["paris"], "pause"), (schedules["paris"], "cancel"), (schedules["paused"], "resume")):
        assert client.act(f"/schedules/{sid}/{action}", {"confirm": "yes"}, follow=False).status_code in (404, 405)
    assert stored(store, schedules["paris"]).state == ScheduleState.ACTIVE
    assert stored(store, schedules["paused"]).state == ScheduleState.PAUSED


def test_no_schedule_stored_says_how_to_make_one(client: Client) -> None:
    page = client.get("/schedules")
    assert page.status_code == 200 and "No schedule is stored" in page.text and 'id="schedules"' not in page.text


class NoScheduleStore(MemoryBackend):
    """A backend that provides every role but the schedule store."""

    capabilities = frozenset({"queue", "jobs", "results", "workers"})


def test_a_store_without_the_schedules_role_says_so(tmp_path: Path) -> None:
    app = Nuvom(root=tmp_path, environ={}, queue=NoScheduleStore(), queue_backend="memory", result_backend="memory")
    try:
        client = Client(app)
        page = client.get("/schedules")
        assert page.status_code == 200
        assert "The memory backend stores no schedules (it does not provide the schedule store role)" in page.text
        assert 'id="no-schedules"' in page.text
        detail = client.get("/schedules/anything")
        assert detail.status_code == 404 and "stores no schedules" in detail.text
        action = client.act("/schedules/anything/pause")
        assert action.status_code == 400 and "stores no schedules" in action.text
        assert client.get("/").status_code == 200  # the rest of the dashboard works
    finally:
        app.close()


@pytest.mark.parametrize("backend", ["memory", "file", "sqlite"])
def test_schedules_pages_work_on_every_builtin_backend(tmp_path: Path, backend: str) -> None:
    app = make_app(tmp_path, backend)
    try:
        add_cron(app, "nightly", "30 2 * * *", "Europe/Berlin", WINTER)
        client = Client(app)
        assert schedule_ids(client.get("/schedules").text) == ["nightly"]
        assert "2026-12-02 02:30:00 CET (+01:00)" in client.get("/schedules/nightly").text
        assert "paused" in client.act("/schedules/nightly/pause").text
        assert stored(app, "nightly").state == ScheduleState.PAUSED
    finally:
        app.close()
