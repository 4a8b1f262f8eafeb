"""``task.schedule(...)`` as Nuvom 0.11 wrote it, the handle, the SDK, periodic
tasks declared in code, and the loop inside a worker."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from nuvom_backend_memory import MemoryBackend
from nuvom_scheduler import plugin as scheduler_plugin
from nuvom_scheduler.periodic import sync_periodic

import nuvom.sdk as sdk
from nuvom_kernel.app import Nuvom, use_app
from nuvom_kernel.errors import InvalidStateError, ScheduleNotFoundError
from nuvom_kernel.models import JobState, now
from nuvom_kernel.schedules import ScheduleState
from nuvom_kernel.task import Task
from nuvom_kernel.worker import Worker


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Nuvom]:
    a = Nuvom(root=tmp_path, queue=MemoryBackend(), queue_backend="memory", result_backend="memory")
    with use_app(a):
        yield a


@pytest.fixture
def add(app: Nuvom) -> Task[int]:
    @app.task(retries=2, timeout_secs=3, queue="maths")
    def add(x: int, y: int) -> int:
        return x + y

    return add  # type: ignore[no-any-return]


def test_the_four_forms_of_the_011_quick_start(app: Nuvom, add: Task[int]) -> None:
    before = now()
    at = add.schedule(5, 7, at=datetime(2038, 1, 19, 3, 14, 7, tzinfo=timezone.utc))
    soon = add.schedule(5, 7, in_=timedelta(seconds=30))
    every = add.schedule(2, 3, interval=300)
    daily = add.schedule(1, 2, cron="0 0 * * *")
    assert len({at.id, soon.id, every.id, daily.id}) == 4
    assert at.next_fire_at == datetime(2038, 1, 19, 3, 14, 7, tzinfo=timezone.utc).timestamp()
    assert soon.next_fire_at is not None and before + 30 <= soon.next_fire_at <= now() + 30
    assert every.next_fire_at is not None and before + 300 <= every.next_fire_at <= now() + 300
    assert daily.next_fire_at is not None and daily.next_fire_at % 86400 == 0 and daily.next_fire_at > before
    stored = daily.schedule()
    assert (stored.task, stored.args, stored.kind, stored.cron, stored.timezone) == ("add", [1, 2], "cron", "0 0 * * *", "UTC")
    assert stored.options["queue"] == "maths" and stored.options["retries"] == 2 and stored.options["timeout_secs"] == 3
    assert [s.id for s in sdk.list_schedules()] == sorted([at.id, soon.id, every.id, daily.id])


@pytest.mark.parametrize("when", [{}, {"interval": 5, "cron": "* * * * *"},
                                  {"at": datetime(2030, 1, 1, tzinfo=timezone.utc), "in_": timedelta(1)}])
def test_exactly_one_of_the_four(app: Nuvom, add: Task[int], when: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one of at=, in_=, interval= or cron="):
        add.schedule(1, 2, **when)  # type: ignore[arg-type]


@pytest.mark.parametrize(("when", "message"), [
    ({"cron": "0 0 * *"}, "invalid cron expression '0 0 \\* \\*'"),
    ({"cron": "61 * * * *"}, "invalid cron expression"),
    ({"cron": "0 0 * * *", "timezone_name": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"interval": 0}, "interval=0 is invalid"),
    ({"interval": -5}, "interval=-5 is invalid"),
    ({"in_": timedelta(seconds=-1)}, "in_=.* is invalid"),
])
def test_bad_schedules_say_what_is_wrong(app: Nuvom, add: Task[int], when: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add.schedule(1, 2, **when)  # type: ignore[arg-type]
    assert sdk.list_schedules() == []


def test_a_naive_at_is_utc_with_a_warning(app: Nuvom, add: Task[int]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handle = add.schedule(1, 1, at=datetime(2031, 5, 6, 7, 8))
    assert any("naive datetime" in str(w.message) for w in caught)
    assert handle.next_fire_at == datetime(2031, 5, 6, 7, 8, tzinfo=timezone.utc).timestamp()


def test_cron_in_a_zone_and_the_schedule_options(app: Nuvom, add: Task[int]) -> None:
    handle = add.options(schedule_id="paris-morning", coalesce="all", misfire_grace_secs=600, catch_up_limit=5,
                         schedule_jitter_secs=2, queue="reports").schedule(1, 2, cron="0 9 * * MON",
                                                                           timezone_name="Europe/Paris")
    s = handle.schedule()
    assert handle.id == "paris-morning"
    assert (s.coalesce, s.misfire_grace_secs, s.catch_up_limit, s.jitter_secs) == ("all", 600.0, 5, 2.0)
    assert s.options["queue"] == "reports"
    local = datetime.fromtimestamp(s.next_fire_at or 0, __import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)


def test_schedule_options_are_refused_by_delay(app: Nuvom, add: Task[int]) -> None:
    with pytest.raises(ValueError, match="only apply to .schedule()"):
        add.options(coalesce="all").delay(1, 2)
    with pytest.raises(ValueError, match="eta= does not apply to schedule()"):
        add.options(eta=now() + 5).schedule(1, 2, interval=5)
    with pytest.raises(ValueError, match="coalesce='sometimes' is invalid"):
        add.options(coalesce="sometimes").schedule(1, 2, interval=5)


def test_pause_resume_cancel_through_the_handle_and_the_sdk(app: Nuvom, add: Task[int]) -> None:
    handle = add.schedule(1, 2, interval=60)
    assert handle.pause().state == ScheduleState.PAUSED
    assert sdk.resume_schedule(handle.id).state == ScheduleState.ACTIVE
    assert sdk.cancel_schedule(handle.id).state == ScheduleState.CANCELLED
    with pytest.raises(InvalidStateError, match="never fires again"):
        handle.resume()
    with pytest.raises(ScheduleNotFoundError, match="no schedule with id 'nope'"):
        sdk.get_schedule("nope")


def test_periodic_tasks_declared_in_code_are_stored_once_and_updated(app: Nuvom) -> None:
    @app.task(cron="*/5 * * * *", timezone="Europe/Paris", queue="periodic")
    def report() -> None: ...

    @app.task(interval=30)
    def heartbeat() -> None: ...

    assert sync_periodic(app) == 2
    assert sync_periodic(app) == 2
    stored = {s.id: s for s in sdk.list_schedules()}
    assert set(stored) == {"periodic.report", "periodic.heartbeat"}
    assert stored["periodic.report"].timezone == "Europe/Paris" and stored["periodic.report"].origin == "code"
    assert stored["periodic.report"].options["queue"] == "periodic"
    assert "cron" not in stored["periodic.report"].plugin_options
    sdk.pause_schedule("periodic.report")

    @app.task(cron="0 * * * *", timezone="Europe/Paris", queue="periodic")
    def report() -> None: ...  # noqa: F811 - the code changed

    sync_periodic(app)
    changed = sdk.get_schedule("periodic.report")
    assert changed.cron == "0 * * * *" and changed.state == ScheduleState.PAUSED


def _run_worker(app: Nuvom) -> tuple[Worker, threading.Thread]:
    worker = Worker(app, queues=["default"], concurrency=2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.wait_ready(30)
    return worker, thread


def test_every_worker_runs_the_scheduler_loop(app: Nuvom) -> None:
    ran = threading.Event()

    @app.task
    def ping() -> str:
        ran.set()
        return "pong"

    ping.schedule(in_=timedelta(0))
    worker, thread = _run_worker(app)
    try:
        assert ran.wait(30), "the worker's scheduler loop never fired the due schedule"
        assert scheduler_plugin._worker_loops.get(worker.id) is not None
    finally:
        worker.request_stop()
        thread.join(30)
    assert worker.id not in scheduler_plugin._worker_loops
    (job,) = [j for j in app.jobs.query_jobs(limit=10).jobs]
    assert job.task == "ping"
    assert app.jobs.get(job.id) is not None and app.jobs.get(job.id).state == JobState.SUCCEEDED  # type: ignore[union-attr]


def test_the_loop_can_be_left_out_of_a_worker(tmp_path: Path) -> None:
    app = Nuvom(root=tmp_path, queue=MemoryBackend(), queue_backend="memory", result_backend="memory",
                scheduler__in_workers=False)
    worker, thread = _run_worker(app)
    try:
        assert worker.id not in scheduler_plugin._worker_loops
    finally:
        worker.request_stop()
        thread.join(30)


def test_without_a_scheduler_plugin_schedule_says_what_to_install(tmp_path: Path) -> None:
    from nuvom_kernel.errors import CapabilityError
    from nuvom_kernel.manager import NuvomPluginManager

    plugins = NuvomPluginManager(tmp_path, environ={"NUVOM_DISABLE_PLUGINS": "nuvom-scheduler"})
    app = Nuvom(root=tmp_path, plugins=plugins, queue=MemoryBackend(), queue_backend="memory",
                result_backend="memory", environ={"NUVOM_DISABLE_PLUGINS": "nuvom-scheduler"})

    @app.task
    def nightly() -> None: ...

    with pytest.raises(CapabilityError, match="pip install nuvom-scheduler"):
        nightly.schedule(interval=60)
    assert app.schedules.list_schedules() == []


def test_fired_jobs_go_through_the_selected_serializer(tmp_path: Path) -> None:
    pytest.importorskip("nuvom_serializer_msgpack")
    app = Nuvom(root=tmp_path, queue=MemoryBackend(), queue_backend="memory", result_backend="memory",
                serialization_backend="msgpack")

    @app.task
    def join(a: str, b: bytes = b"") -> str:
        return a + b.decode()

    join.schedule("x", b=b"yz", in_=timedelta(0))
    worker, thread = _run_worker(app)
    try:
        deadline = now() + 30
        while not [j for j in app.jobs.query_jobs(limit=5).jobs if j.state == JobState.SUCCEEDED]:
            assert now() < deadline, "the scheduled job did not run"
            threading.Event().wait(0.05)
    finally:
        worker.request_stop()
        thread.join(30)
    (job,) = app.jobs.query_jobs(limit=5).jobs
    assert app.decode_value(job.result) == "xyz"
