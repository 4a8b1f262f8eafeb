"""`nuvom.sdk` operations through the public functions, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import running_worker

from nuvom import sdk, task
from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import InvalidIdError, InvalidStateError, JobNotFoundError, PayloadError
from nuvom_kernel.models import JobState, WorkerInfo, now
from nuvom_kernel.task import JobHandle


@task(name="sdkops.add")
def add(a: int, b: int) -> int:
    return a + b


@task(name="sdkops.boom", retries=1, retry_delay_secs=0)
def boom() -> None:
    raise ValueError("boom")


def _failed_job(app: Nuvom) -> str:
    handle = boom.delay()
    with running_worker(app, burst=True, concurrency=1):
        job = handle.wait(30)
    assert job.state == JobState.FAILED and job.attempts == 2
    return handle.id


def test_retry_job_reruns_an_exhausted_job_as_the_same_job(app: Nuvom) -> None:
    job_id = _failed_job(app)
    assert sdk.retry_job(job_id) == job_id
    assert sdk.get_job(job_id).state == JobState.QUEUED
    with running_worker(app, burst=True, concurrency=1):
        again = JobHandle(job_id, app).wait(30)
    assert again.id == job_id and again.state == JobState.FAILED and again.attempts == 3
    assert [e.attempt for e in again.errors] == [1, 2, 3]
    assert any(t.note == "retried by operator" for t in again.history)


def test_retry_refuses_live_jobs_and_reruns_succeeded_ones_as_011_did(app: Nuvom) -> None:
    queued = add.options(priority=3).delay(1, 2)
    with pytest.raises(InvalidStateError, match="queued"):
        sdk.retry_job(queued.id)
    with running_worker(app, burst=True, concurrency=1):
        assert queued.result(30) == 3
    copy_id = sdk.retry_job(queued.id)
    assert copy_id != queued.id  # 0.11 returned the new job's id
    original = sdk.get_job(queued.id)
    assert original.state == JobState.SUCCEEDED and original.result == 3  # kept, not overwritten
    copy = sdk.get_job(copy_id)
    assert (copy.state, copy.task, copy.args, copy.priority, copy.attempts) == (JobState.QUEUED, "sdkops.add", [1, 2], 3, 0)
    with running_worker(app, burst=True, concurrency=1):
        assert JobHandle(copy_id, app).result(30) == 3


def test_unknown_and_unsafe_ids(app: Nuvom) -> None:
    with pytest.raises(JobNotFoundError):
        sdk.get_job("nope")
    for bad in ("../x", "..\\x", "CON", "a/b", "a\x00b", "x" * 65):
        with pytest.raises(InvalidIdError):
            sdk.get_job_status(bad)
        with pytest.raises(InvalidIdError):
            sdk.retry_job(bad)


def test_cancel_job_and_status(app: Nuvom) -> None:
    handle = add.options(countdown=3600).delay(1, 1)
    assert sdk.get_job_status(handle.id)["state"] == "scheduled"
    assert sdk.cancel_job(handle.id).state == JobState.CANCELLED
    with pytest.raises(InvalidStateError, match="already cancelled"):
        sdk.cancel_job(handle.id)
    assert sdk.retry_job(handle.id) == handle.id  # a cancelled job can be run again


def test_list_jobs_newest_first_paginated_and_filtered(app: Nuvom) -> None:
    ids = [add.delay(i, i).id for i in range(5)]
    page1 = sdk.list_jobs(limit=2)
    page2 = sdk.list_jobs(limit=2, offset=2)
    assert [j.id for j in page1 + page2] == ids[::-1][:4]
    assert len(sdk.list_jobs(limit=0)) == 5
    assert sdk.list_jobs(state="FAILED") == []
    assert len(sdk.list_jobs(state="PENDING")) == 5  # 0.11's name: queued, scheduled or running
    assert len(sdk.list_jobs(state=["queued"], task="sdkops.add", since="1h")) == 5
    assert sdk.list_jobs(task="other") == []
    assert sdk.list_jobs(since=datetime.now(timezone.utc) + timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="unknown job state 'finished'"):
        sdk.list_jobs(state="finished")


def test_retry_jobs_many_with_progress(app: Nuvom) -> None:
    failed = [boom.delay().id for _ in range(3)]
    with running_worker(app, burst=True, concurrency=2):
        for jid in failed:
            JobHandle(jid, app).wait(30)
    seen: list[tuple[int, int]] = []
    report = sdk.retry_jobs(state="failed", task="sdkops.boom", progress=lambda d, t: seen.append((d, t)))
    assert sorted(report["retried"]) == sorted(failed) and report["skipped"] == {}
    assert seen[-1] == (3, 3)
    assert {sdk.get_job(j).state for j in failed} == {JobState.QUEUED}
    with pytest.raises(InvalidStateError, match="cannot retry queued"):
        sdk.retry_jobs(state="queued")


def test_purge_jobs_never_deletes_live_jobs(app: Nuvom) -> None:
    live = add.delay(1, 2)
    done = add.delay(2, 2)
    cancelled = add.delay(3, 3)
    sdk.cancel_job(cancelled.id)
    with running_worker(app, burst=True, concurrency=1, queues=["default"]):
        done.wait(30)
        live.wait(30)
    fresh = add.delay(9, 9)  # queued, must survive
    with pytest.raises(InvalidStateError, match="never deletes live jobs"):
        sdk.purge_jobs(state="queued")
    assert sdk.purge_jobs(state="succeeded", older_than="1h") == 0  # all finished moments ago
    assert sdk.purge_jobs(state="cancelled") == 1
    assert sdk.purge_jobs(older_than=datetime.now(timezone.utc) + timedelta(seconds=5)) == 2
    assert [j.id for j in sdk.list_jobs()] == [fresh.id]


def test_enqueue_by_name_without_importing(app: Nuvom) -> None:
    handle = sdk.enqueue("sdkops.add", 20, 22, queue="q1", priority=5)
    job = sdk.get_job(handle.id)
    assert (job.task, job.args, job.queue, job.priority) == ("sdkops.add", [20, 22], "q1", 5)
    later = sdk.enqueue("sdkops.add", 1, kwargs={"b": 2}, eta="+1h")
    assert sdk.get_job(later.id).state == JobState.SCHEDULED
    with running_worker(app, burst=True, concurrency=1, queues=["q1"]):
        assert handle.result(30) == 42
    with pytest.raises(PayloadError):
        sdk.enqueue("sdkops.add", "x" * (app.settings.max_payload_bytes + 1))
    with pytest.raises(InvalidIdError):
        sdk.enqueue("sdkops.add", queue="../evil")


def test_enqueue_uses_the_manifest_options(tmp_path: Path) -> None:
    from support import make_app

    from nuvom_support.manifest import Manifest, ManifestTask, default_manifest_path, save_manifest

    a = make_app("memory", tmp_path)
    manifest = Manifest(root=str(tmp_path), tasks=[ManifestTask(
        name="m.send", module="m", qualname="send", path="m.py", line=3,
        options={"retries": 4, "timeout_secs": 7, "queue": "mail", "priority": 2})])
    save_manifest(manifest, default_manifest_path(a.settings, a.root))
    job = sdk.get_job(sdk.enqueue("m.send", "a@b.c", app=a).id, app=a)
    assert (job.max_retries, job.timeout_secs, job.queue, job.priority) == (4, 7, "mail", 2)
    assert sdk.task_options_from_manifest("nope", app=a) is None


def test_stats_counts_workers_and_throughput(app: Nuvom) -> None:
    ok = add.delay(1, 1)
    add.options(queue="other").delay(1, 2)
    with running_worker(app, burst=True, concurrency=1):
        ok.wait(30)
    stale = WorkerInfo(id="ghost", host="h", pid=1, queues=["default"], concurrency=1, executor="thread",
                       started_at=now() - 600, heartbeat_at=now() - 3 * app.settings.lease_secs)
    app.queue.register_worker(stale)
    data = sdk.stats()
    assert data["queues"]["default"]["succeeded"] == 1 and data["queues"]["other"]["queued"] == 1
    assert data["states"]["succeeded"] == 1 and data["total"] == 2
    assert data["oldest_queued_age_secs"] is not None and data["oldest_queued_age_secs"] >= 0
    assert data["throughput"]["finished"] == 1 and data["throughput"]["exact"]
    statuses = {w["id"]: w["status"] for w in data["workers"]}
    assert statuses["ghost"] == "stale" and "stopped" in statuses.values()


def test_parse_helpers() -> None:
    assert sdk.parse_duration("7d") == 7 * 86400 and sdk.parse_duration("90") == 90.0
    assert abs(sdk.parse_time("1h") - (now() - 3600)) < 60
    assert abs(sdk.parse_time("+30s") - (now() + 30)) < 60
    assert sdk.parse_time("2025-01-01T00:00:00") == datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    with pytest.raises(ValueError, match="invalid duration"):
        sdk.parse_duration("soon")
    with pytest.raises(ValueError, match="invalid time"):
        sdk.parse_time("yesterday")
    assert sdk.normalize_states(["SUCCESS", "succeeded"]) == [JobState.SUCCEEDED]

