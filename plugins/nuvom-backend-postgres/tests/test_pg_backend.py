"""What the PostgreSQL backend adds to the contract: transactional enqueue,
migrations under concurrency, the history table, expired leases re-picked by
claims, reconnects, settings and secrets."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from nuvom_backend_postgres import PostgresBackend, in_transaction
from nuvom_backend_postgres.plugin import PostgresOptions, make_backend
from nuvom_backend_postgres.schema import LATEST, applied_versions

from nuvom_kernel.errors import ConfigError
from nuvom_kernel.models import Job, JobState, Outcome
from nuvom_kernel.settings import NuvomSettings
from nuvom_kernel.testing.queue_contract import wait_for

Make = Callable[..., PostgresBackend]


def test_enqueue_in_a_rolled_back_transaction_leaves_no_job(backend: PostgresBackend, pg_url: str, schema: str) -> None:
    backend.open()
    with psycopg.connect(pg_url) as conn:
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".orders (id int)')
        conn.commit()
        with in_transaction(conn):
            conn.execute(f'INSERT INTO "{schema}".orders VALUES (1)')
            job = backend.enqueue(Job(task="send.receipt", args=[1]))
        assert backend.claim(["default"], 5, 30, "w") == []  # not visible before the commit
        conn.rollback()
    assert backend.get(job.id) is None
    assert backend.claim(["default"], 5, 30, "w") == []
    # an autocommit connection inside its own transaction block
    with psycopg.connect(pg_url, autocommit=True) as conn, pytest.raises(RuntimeError), conn.transaction(), \
            in_transaction(conn):
        other = backend.enqueue(Job(task="send.receipt", args=[3]))
        raise RuntimeError("the caller's transaction fails")
    assert backend.get(other.id) is None


def test_enqueue_in_a_committed_transaction_runs(backend: PostgresBackend, pg_url: str, make_backend: Make) -> None:
    backend.open()
    woken = threading.Event()
    unsubscribe = make_backend().subscribe(woken.set)  # another process's worker, listening
    try:
        with psycopg.connect(pg_url) as conn:
            with in_transaction(conn):
                job = backend.enqueue(Job(task="send.receipt", args=[2]))
            assert not woken.wait(0.3)  # the wake-up is part of the transaction too
            assert backend.get(job.id) is None  # nor is the job visible before the commit
            conn.commit()
        assert woken.wait(10)
    finally:
        unsubscribe()
    [claimed] = backend.claim(["default"], 5, 30, "w", start_now=1)
    assert claimed.id == job.id
    assert backend.finish(job.id, claimed.token or 0, Outcome(kind="succeeded", result="sent"))
    done = backend.get(job.id)
    assert done is not None and done.state == JobState.SUCCEEDED and done.result == "sent"


def test_in_transaction_names_what_it_needs() -> None:
    with pytest.raises(TypeError, match="psycopg 3 connection"), in_transaction(object()):  # type: ignore[arg-type]
        pass


def test_many_processes_migrating_at_once_apply_each_migration_once(pg_url: str) -> None:
    schema = f"nuvom_mig_{os.getpid()}"
    code = (
        "import sys\nfrom nuvom_backend_postgres import PostgresBackend\n"
        "b = PostgresBackend(sys.argv[1], schema=sys.argv[2]); b.open(); b.close()\n"
    )
    try:
        procs = [subprocess.Popen([sys.executable, "-c", code, pg_url, schema], stderr=subprocess.PIPE)
                 for _ in range(6)]
        errors = [p.communicate(timeout=120)[1].decode() for p in procs]
        assert all(p.returncode == 0 for p in procs), errors
        with psycopg.connect(pg_url, autocommit=True) as conn:
            applied = applied_versions(conn, schema)
            assert applied is not None and sorted(applied) == list(range(1, LATEST + 1))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_without_auto_migrate_the_error_says_what_to_run(pg_url: str) -> None:
    b = PostgresBackend(pg_url, schema=f"nuvom_none_{os.getpid()}", migrate=False)
    with pytest.raises(ConfigError, match="nuvom postgres migrate"):
        b.get("some-job")
    b.close()


def test_a_claim_takes_over_an_expired_lease_without_a_sweeper(make_backend: Make) -> None:
    dead_worker, live_worker = make_backend(), make_backend()
    job = dead_worker.enqueue(Job(task="t", max_lease_expiries=1))
    [first] = dead_worker.claim(["default"], 1, 0.2, "dead", start_now=1)
    [again] = wait_for(lambda: live_worker.claim(["default"], 1, 0.2, "live", start_now=1))
    assert again.id == job.id and (again.token or 0) > (first.token or 0)
    # the dead attempt is not charged; redelivered, it is only claimed (started on a free slot)
    assert (again.state, again.attempts, again.lease_expiries) == (JobState.CLAIMED, 0, 1)
    notes = [t.note or "" for t in again.history]
    assert any("lease expired while running (worker dead)" in n for n in notes) and notes[-1] == "claimed by live"
    assert live_worker.start({job.id: again.token or 0}) == {job.id}
    assert dead_worker.finish(job.id, first.token or 0, Outcome(kind="succeeded")) is False
    # past its lease-expiry budget a claim leaves it alone; the sweep makes it dead and reports it once
    wait_for(lambda: live_worker.get(job.id).lease_expires_at < live_worker.now())  # type: ignore[union-attr]
    assert live_worker.claim(["default"], 1, 30, "other") == []
    swept = dead_worker.sweep()
    assert swept == 1 and [(b.state, a.state) for b, a in swept.dead] == [(JobState.RUNNING, JobState.DEAD)]
    before, dead = swept.dead[0]
    assert (before.worker_id, before.token, before.attempts) == ("live", again.token, 1)
    assert dead.state == JobState.DEAD and "lease expired 2 times" in (dead.reason or "")
    assert dead_worker.sweep() == 0


def test_the_history_mover_waits_for_enqueues_in_flight_and_skips_a_long_one(
        make_backend: Make, pg_url: str, schema: str) -> None:
    """An enqueue in a caller's transaction holds the id lock: the mover waits a
    moment for it (under steady enqueue traffic it would never find the lock
    free), then skips the round rather than block producers behind it."""
    b = make_backend(keep_hot_secs=0.0)
    b.enqueue_many([Job(task="t") for _ in range(3)])
    for c in b.claim(["default"], 3, 30, "w", start_now=3):
        assert b.finish(c.id, c.token or 0, Outcome(kind="succeeded"))
    with psycopg.connect(pg_url) as caller:
        with in_transaction(caller):
            b.enqueue(Job(task="t"))  # its transaction stays open: the lock is held
        assert b.maintain()["moved"] == 0  # gave up after a short wait instead of hanging
        release = threading.Timer(0.05, caller.commit)  # an enqueue that commits in a moment
        release.start()
        try:
            with in_transaction(caller):
                b.enqueue(Job(task="t"))
            assert b.maintain()["moved"] == 3  # waited for it, then moved
        finally:
            release.cancel()
            caller.commit()


def test_finished_jobs_move_to_history_and_expire(make_backend: Make, pg_url: str, schema: str) -> None:
    b = make_backend(keep_hot_secs=0.0, retention_secs=3600.0)
    jobs = b.enqueue_many([Job(task="t", args=[i]) for i in range(5)])
    for c in b.claim(["default"], 5, 30, "w", start_now=5):
        kind = "failed" if c.args[0] == 1 else "succeeded"
        assert b.finish(c.id, c.token or 0, Outcome(kind=kind, result=c.args[0]))
    assert b.maintain()["moved"] == 5
    with psycopg.connect(pg_url) as conn:
        hot, done = conn.execute(f'SELECT (SELECT count(*) FROM "{schema}".jobs), (SELECT count(*) FROM "{schema}".jobs_done)').fetchone()  # type: ignore[misc]
    assert (hot, done) == (0, 5)
    got = b.get(jobs[0].id)
    assert got is not None and got.result == 0 and b.get_result(jobs[0].id) is not None
    assert [j.id for j in b.query_jobs(limit=10).jobs] == [j.id for j in sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)]
    assert b.counts() == {"default": {"succeeded": 4, "failed": 1}}
    again = b.retry(jobs[1].id)  # from history back to the hot table
    assert again is not None and again.state == JobState.QUEUED
    assert b.enqueue(Job(id=jobs[2].id, task="t", args=[99])).args == [2]  # a finished id is still one job
    with psycopg.connect(pg_url) as conn:
        conn.execute(f'UPDATE "{schema}".jobs_done SET finished_at = finished_at - 7200')
    assert b.maintain()["deleted"] == 4
    assert b.get(jobs[0].id) is None and b.get(jobs[1].id) is not None


def test_operations_survive_a_killed_connection(backend: PostgresBackend, pg_url: str) -> None:
    job = backend.enqueue(Job(task="t"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = 'nuvom'").fetchone()
    assert killed and killed[0] >= 1
    [claimed] = backend.claim(["default"], 1, 30, "w")  # the pool's dead connection is replaced
    assert claimed.id == job.id


def test_the_password_never_reaches_logs_or_errors(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-Pa55"
    url = pg_url.replace("nuvom@", f"nobody:{secret}@").replace("/postgres", "/no_such_db")
    b = make_backend(NuvomSettings(), {"url": url, "connect_timeout_secs": 2, "retry_secs": 0.5})
    with pytest.raises(Exception) as info:
        b.get("x")
    b.close()
    assert secret not in str(info.value) and secret not in caplog.text and secret not in repr(b)
    options = PostgresOptions.model_validate({"url": url})
    assert secret not in json.dumps(options.model_dump(mode="json")) and secret not in repr(options)
    with pytest.raises(ConfigError) as bad:
        make_backend(NuvomSettings(), {"url": f"postgresql://u:{secret}@host:notaport/db?x"})
    assert secret not in str(bad.value)


def test_empty_on_open_refuses_the_default_schema() -> None:
    with pytest.raises(ConfigError, match="scratch"):
        make_backend(NuvomSettings(), {"empty_on_open": True})


def test_nuvom_plugin_test_passes(pg_url: str, tmp_path: Path) -> None:
    nuvom = Path(sys.executable).with_name("nuvom")
    schema = f"nuvom_plugtest_{os.getpid()}"
    try:
        proc = subprocess.run(
            [str(nuvom), "plugin", "test", "nuvom-backend-postgres", "--json", "--option", f"url={pg_url}",
             "--option", f"schema={schema}", "--option", "empty_on_open=true"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
        report = json.loads(proc.stdout)
        failed = [(c["name"], c["detail"]) for p in report["plugins"] for c in p["checks"] if not c["ok"]]
        assert report["ok"], failed
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_copy_jobs_moves_queued_jobs_over_from_sqlite(tmp_path: Path, pg_url: str, schema: str, make_backend: Make) -> None:
    from nuvom_backend_sqlite import SqliteBackend

    source = SqliteBackend(tmp_path / ".nuvom" / "result.db")
    queued = source.enqueue_many([Job(task="t", args=[i]) for i in range(3)])
    later = source.enqueue(Job(task="t", eta=4_000_000_000.0))
    [running] = source.claim(["default"], 1, 30, "w", start_now=1)
    source.close()
    env = {**os.environ, "NUVOM_POSTGRES__URL": pg_url, "NUVOM_POSTGRES__SCHEMA": schema, "NUVOM_PROJECT_ROOT": str(tmp_path)}
    nuvom = str(Path(sys.executable).with_name("nuvom"))
    for expected in (3, 0):  # a second run copies nothing twice
        proc = subprocess.run([nuvom, "postgres", "copy-jobs", "--from", "sqlite", "--move", "--json"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["copied"] == expected
    b = make_backend()
    copied = {j.id: j for j in b.query_jobs(limit=10).jobs}
    assert set(copied) == {j.id for j in queued[1:]} | {later.id}  # not the one a worker was running
    assert copied[later.id].state == JobState.SCHEDULED and running.id not in copied
    back = SqliteBackend(tmp_path / ".nuvom" / "result.db")
    assert back.get(later.id).state == JobState.CANCELLED  # type: ignore[union-attr]
    back.close()


def test_a_schema_at_version_1_gains_the_schedules_table(pg_url: str) -> None:
    """Migration 2 on a database written by the first release: jobs kept, schedules work."""
    from nuvom_backend_postgres.schema import MIGRATIONS

    from nuvom_kernel.schedules import Schedule

    schema = f"nuvom_v1_{os.getpid()}"
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'CREATE TABLE "{schema}".migrations (version int4 PRIMARY KEY, name text NOT NULL, '
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            for statement in MIGRATIONS[0].statements:
                conn.execute(statement.replace("{s}", f'"{schema}"'))
            conn.execute(f'INSERT INTO "{schema}".migrations (version, name) VALUES (1, %s)', (MIGRATIONS[0].name,))
        old = PostgresBackend(pg_url, schema=schema, migrate=False)
        with pytest.raises(ConfigError, match=r"lacks migration\(s\) \[2\]"):
            old.get("x")
        old.close()
        b = PostgresBackend(pg_url, schema=schema)
        try:
            job = b.enqueue(Job(task="t"))
            s = b.add_schedule(Schedule(id="nightly", task="t", kind="cron", cron="0 0 * * *", next_fire_at=1.0))
            assert b.get(job.id) is not None and [x.id for x in b.due_schedules(2.0, 10)] == [s.id]
        finally:
            b.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            assert sorted(applied_versions(conn, schema) or {}) == [1, 2]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_claims_start_at_their_floor_and_still_find_jobs_behind_it(make_backend: Make) -> None:
    """Claims walk the claim index from the last claimed job on (dead index entries of
    claimed jobs are not walked again while the xmin horizon is held back); higher
    priorities, and jobs released behind the floor, are still found."""
    b = make_backend()
    jobs = b.enqueue_many([Job(task="t", args=[i]) for i in range(4)])
    first, second = b.claim(["default"], 2, 30, "w")
    assert [first.id, second.id] == [jobs[0].id, jobs[1].id]
    urgent = b.enqueue(Job(task="t", priority=5))
    [top] = b.claim(["default"], 1, 30, "w")
    assert top.id == urgent.id  # a higher priority than the floor's comes first
    assert b.release(first.id, first.token or 0)  # now behind the floor
    found = {j.id for j in b.claim(["default"], 5, 30, "w")}
    found |= {j.id for j in b.claim(["default"], 5, 30, "w")}  # nothing from the floor on: from the front
    assert found == {jobs[2].id, jobs[3].id, first.id}


def test_an_exchange_is_all_or_nothing(backend: PostgresBackend, schema: str) -> None:
    """Finish, start and claim are pipelined as ONE transaction (one round trip):
    when the claim fails on the server, the finish sent before it is not applied."""
    from nuvom_kernel.contracts import Completion

    first = backend.enqueue(Job(task="t"))
    [running] = backend.claim(["default"], 1, 30, "w", start_now=1)
    assert running.id == first.id and running.token is not None
    backend.enqueue(Job(task="t"))
    fail = (f"CREATE FUNCTION {schema}.no_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.worker_id = 'boom' THEN RAISE EXCEPTION 'boom claims fail'; END IF; RETURN NEW; END $$")
    backend.db.run(lambda conn: conn.execute(fail))
    backend.db.run(lambda conn: conn.execute(
        f"CREATE TRIGGER no_boom BEFORE UPDATE ON {schema}.jobs FOR EACH ROW EXECUTE FUNCTION {schema}.no_boom()"))
    try:
        with pytest.raises(psycopg.Error, match="boom claims fail"):
            backend.exchange([Completion(first.id, running.token, Outcome(kind="succeeded", result=1))],
                             ["default"], 1, 30, "boom")
        assert backend.get(first.id).state == JobState.RUNNING  # type: ignore[union-attr]
        reply = backend.exchange([Completion(first.id, running.token, Outcome(kind="succeeded", result=1))],
                                 ["default"], 1, 30, "w")
        assert reply.accepted == [True] and len(reply.claimed) == 1
    finally:
        backend.db.run(lambda conn: conn.execute(f"DROP TRIGGER no_boom ON {schema}.jobs"))
    assert backend.get(first.id).state == JobState.SUCCEEDED  # type: ignore[union-attr]


def test_a_job_enqueued_alone_is_stored_as_in_a_batch(backend: PostgresBackend) -> None:
    """One job goes through the one-row insert (scalar parameters), several
    through the array insert: both store every column alike."""
    def make(job_id: str) -> Job:
        return Job(id=job_id, task="t", args=[1, "x"], kwargs={"k": None}, priority=3, max_retries=2,
                   unique_key=f"u-{job_id}", tags=["a"], timeout_secs=5.0, eta=backend.now() + 3600)

    alone = backend.enqueue(make("alone"))
    batch = backend.enqueue_many([make("batch"), make("other")])
    assert alone.state == batch[0].state == JobState.SCHEDULED
    got_alone, got_batch = backend.get("alone"), backend.get("batch")
    assert got_alone is not None and got_batch is not None
    skip = {"id", "unique_key", "created_at", "updated_at", "eta", "history"}
    assert got_alone.model_dump(exclude=skip) == got_batch.model_dump(exclude=skip)
    assert backend.enqueue(make("alone")).id == "alone"  # stored once: the stored job comes back
    assert sum(n for by_state in backend.counts().values() for n in by_state.values()) == 3
