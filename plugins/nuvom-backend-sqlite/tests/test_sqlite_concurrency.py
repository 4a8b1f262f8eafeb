"""Several threads and several spawned processes on one database file."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path

import pytest
from nuvom_backend_sqlite import SqliteBackend

from nuvom_kernel.contracts import Completion, JobFilter
from nuvom_kernel.models import Job, JobState, Outcome

HERE = Path(__file__).parent


@pytest.fixture
def procs(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(HERE))
    import _nuvom_sqlite_procs

    return _nuvom_sqlite_procs


@pytest.mark.parametrize("use_returning", [True, False])
def test_threads_claim_each_job_once(tmp_path: Path, use_returning: bool) -> None:
    total = 1500
    backend = SqliteBackend(tmp_path / "q.db", use_returning=use_returning)
    backend.enqueue_many([Job(task="t", args=[i]) for i in range(total)])
    seen: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            pending: list[Completion] = []
            while True:
                accepted, claimed, _ = backend.exchange(pending, ["default"], 16, 60, f"w{n}", start_now=16)
                assert all(accepted)
                pending = [Completion(j.id, j.token or 0, Outcome(kind="succeeded")) for j in claimed]
                with lock:
                    seen.extend(j.id for j in claimed)
                if not claimed and not pending:
                    return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(seen) == total and len(set(seen)) == total
    assert backend.counts() == {"default": {"succeeded": total}}
    backend.close()


def test_processes_claim_each_job_once(tmp_path: Path, procs) -> None:  # type: ignore[no-untyped-def]
    total, workers = 3000, 3
    path = str(tmp_path / "q.db")
    backend = SqliteBackend(path)
    backend.enqueue_many([Job(task="t", args=[i]) for i in range(total)])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.starmap(procs.drain, [(path, f"p{n}", total) for n in range(workers)], chunksize=1)
    ids = [job_id for result in results for job_id, _ in result]
    tokens = [token for result in results for _, token in result]
    assert len(ids) == total and len(set(ids)) == total
    assert len(set(tokens)) == total
    done = backend.query_jobs(JobFilter(states=frozenset({JobState.SUCCEEDED})), limit=total).jobs
    assert len(done) == total and all(j.attempts == 1 for j in done)
    backend.close()


def test_processes_enqueue_and_claim_at_the_same_time(tmp_path: Path, procs) -> None:  # type: ignore[no-untyped-def]
    per_producer, producers, consumers = 600, 2, 2
    total = per_producer * producers
    path = str(tmp_path / "q.db")
    SqliteBackend(path).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(producers + consumers) as pool:
        drains = [pool.apply_async(procs.drain, (path, f"c{n}", total, 4)) for n in range(consumers)]
        made = [pool.apply_async(procs.produce, (path, f"p{n}", per_producer)) for n in range(producers)]
        assert sum(m.get(180) for m in made) == total
        seen = [job_id for d in drains for job_id, _ in d.get(180)]
    assert len(seen) == total and not [k for k, v in Counter(seen).items() if v > 1]


def test_thread_connections_are_separate(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "q.db")
    main = backend.db.connection()
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(backend.db.connection()))
    t.start()
    t.join()
    assert other[0] is not main and backend.db.connection() is main
    backend.close()
    assert backend.db.connection() is not main  # reopened after close
    backend.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path, procs) -> None:  # type: ignore[no-untyped-def]
    backend = SqliteBackend(tmp_path / "q.db")
    backend.enqueue(Job(id="before", task="t"))
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=procs.enqueue_inherited, args=(backend, "from-fork"))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert backend.get("from-fork") is not None
    backend.enqueue(Job(id="after", task="t"))  # the parent's connection still works
    assert len(backend.claim(["default"], 10, 30, "w")) == 3
    backend.close()
