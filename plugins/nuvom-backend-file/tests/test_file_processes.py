"""Several processes (spawn) and threads on one directory: no job is claimed
twice, none is lost, and a unique key yields one job."""

from __future__ import annotations

import importlib
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
from nuvom_backend_file import FileBackend

from nuvom_kernel.models import Job, JobState, Outcome

HERE = Path(__file__).parent


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(HERE))
    return importlib.import_module("filebackend_children")


def _run(target: Any, root: Path, tmp_path: Path, n: int) -> list[list[str]]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    outs = [tmp_path / f"out-{i}.txt" for i in range(n)]
    procs = [ctx.Process(target=target, args=(str(root), str(out), start)) for out in outs]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(180)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return [out.read_text().split("\n") if out.read_text() else [] for out in outs]


def test_processes_claim_each_job_exactly_once(tmp_path: Path, children: Any) -> None:
    root = tmp_path / "jobs"
    backend = FileBackend(root, fsync=False, doorbell=False)
    jobs = backend.enqueue_many([Job(task="t", args=[i], priority=i % 3) for i in range(1500)])
    per_process = _run(children.drain, root, tmp_path, 4)
    claimed = [job_id for ids in per_process for job_id in ids]
    assert not [c for c in claimed if c.startswith("REFUSED")]
    assert len(claimed) == len(set(claimed)) == len(jobs)
    assert sum(1 for ids in per_process if ids) >= 2  # the work really was shared
    assert backend.counts() == {"default": {"succeeded": 1500}}
    backend.close()


def test_processes_racing_on_a_unique_key_make_one_job(tmp_path: Path, children: Any) -> None:
    root = tmp_path / "jobs"
    per_process = _run(children.enqueue_unique, root, tmp_path, 4)
    ids = {job_id for ids in per_process for job_id in ids}
    assert len(ids) == 1
    backend = FileBackend(root, doorbell=False)
    assert backend.counts() == {"default": {"queued": 1}}
    backend.close()


def test_threads_sharing_one_instance(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "jobs", fsync=False)
    backend.enqueue_many([Job(task="t", args=[i]) for i in range(600)])
    seen: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            while got := backend.claim(["default"], 5, 60.0, "w"):
                for job in got:
                    assert backend.finish(job.id, job.token or 0, Outcome(kind="succeeded"))
                with lock:
                    seen.extend(j.id for j in got)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(seen) == len(set(seen)) == 600
    assert all(j.state == JobState.SUCCEEDED for j in backend.query_jobs(limit=1000).jobs)
    backend.close()
