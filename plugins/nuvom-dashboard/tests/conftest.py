"""Fixtures: an app on a real store with jobs in every state, and an HTTP client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # dashboard_support, under --import-mode=importlib

from dashboard_support import Client, failure, make_app, run_to_end  # noqa: E402

from nuvom_kernel.app import Nuvom  # noqa: E402
from nuvom_kernel.models import Job, Outcome, WorkerInfo, now  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Nuvom]:
    """A SQLite store holding queued, succeeded, failed and dead jobs, and one worker."""
    app = make_app(tmp_path)
    jobs = [Job(task="billing.charge", args=[i], kwargs={"currency": "EUR"}, queue="billing") for i in range(6)]
    jobs += [Job(task="mail.send", args=["ann@example.com"], queue="mail", max_retries=2) for _ in range(4)]
    stored = app.enqueue_many(jobs)
    charge = [j.id for j in stored if j.task == "billing.charge"]
    mail = [j.id for j in stored if j.task == "mail.send"]
    run_to_end(app, {charge[0]: Outcome(kind="succeeded", result={"charged": 10}),
                     charge[1]: failure("card declined"),
                     mail[0]: Outcome(kind="dead", reason="unknown task 'mail.send'")})
    at = now()
    app.workers.register_worker(WorkerInfo(id="web1-42-abc", host="web1", pid=42, queues=["billing", "mail"],
                                           concurrency=4, executor="thread", started_at=at - 600,
                                           heartbeat_at=at - 1, jobs_done=3))
    app.ids = {"succeeded": charge[0], "failed": charge[1], "dead": mail[0], "queued": charge[2]}  # type: ignore[attr-defined]
    yield app
    app.close()


@pytest.fixture
def client(store: Nuvom) -> Client:
    return Client(store)
