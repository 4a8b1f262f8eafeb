"""The file itself: permissions, schema versions, locks, the WAL, network shares, the factory."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import nuvom_backend_sqlite.database as database_module
import pytest
from nuvom_backend_sqlite import DatabaseBusyError, SqliteBackend, network_share_reason
from nuvom_backend_sqlite.database import Database
from nuvom_backend_sqlite.netshare import mount_type
from nuvom_backend_sqlite.plugin import (
    SqliteOptions,
    make_backend,
    nuvom_register_storage,
)
from nuvom_backend_sqlite.schema import SCHEMA_VERSION

from nuvom_kernel.contracts import Completion, JobFilter
from nuvom_kernel.errors import ConfigError, StoreCorruptError
from nuvom_kernel.models import Job, JobState, Outcome
from nuvom_kernel.settings import NuvomSettings

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@posix_only
def test_directories_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        backend = SqliteBackend(tmp_path / "a" / "b" / "q.db")
        backend.enqueue(Job(task="t"))
    finally:
        os.umask(old)
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(Path(f"{backend.path}{suffix}").stat().st_mode) == 0o600, suffix
    backend.close()


def test_wal_mode_and_synchronous_setting(tmp_path: Path) -> None:
    for mode, expected in (("NORMAL", 1), ("FULL", 2)):
        backend = SqliteBackend(tmp_path / f"{mode}.db", synchronous=mode)
        conn = backend.db.connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        backend.close()
    with pytest.raises(ConfigError, match="SYNCHRONOUS"):
        SqliteBackend(tmp_path / "x.db", synchronous="SOMETIMES")


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    SqliteBackend(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade nuvom-backend-sqlite"):
        SqliteBackend(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorruptError, match="not a usable SQLite database"):
        SqliteBackend(path)
    with pytest.raises(ConfigError, match="not a file path"):
        SqliteBackend(":memory:")


def test_reopening_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = SqliteBackend(path)
    job = first.enqueue(Job(task="t"))
    first.close()
    second = SqliteBackend(path)
    assert second.get(job.id) is not None
    assert second.db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    second.close()


def test_busy_retry_then_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    backend = SqliteBackend(path, busy_timeout_secs=0.01)
    backend.db.retries = 3
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(DatabaseBusyError, match="stayed locked after 4 attempts"):
        backend.enqueue(Job(task="t"))
    holder.execute("COMMIT")
    holder.close()
    assert backend.enqueue(Job(task="t")).state == JobState.QUEUED
    backend.close()


def test_busy_error_is_retried_until_it_clears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(tmp_path / "q.db")
    monkeypatch.setattr(database_module.time, "sleep", lambda _s: None)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert db._retry(flaky) == "done" and len(calls) == 4

    def broken() -> None:
        raise sqlite3.OperationalError("no such table: x")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        db._retry(broken)
    db.close()


def test_writers_queue_behind_a_held_lock_without_errors(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    backend = SqliteBackend(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    started = threading.Event()
    errors: list[BaseException] = []

    def enqueue() -> None:
        started.set()
        try:
            backend.enqueue(Job(id="waited", task="t"))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=enqueue)
    t.start()
    started.wait(10)
    holder.execute("COMMIT")
    t.join(60)
    assert not errors and backend.get("waited") is not None
    holder.close()
    backend.close()


def test_wal_stays_bounded(tmp_path: Path) -> None:
    limit = 256 * 1024
    backend = SqliteBackend(tmp_path / "q.db", wal_limit_bytes=limit, checkpoint_every=50)
    reader = sqlite3.connect(backend.path, isolation_level=None)  # another process's idle connection
    biggest = 0
    for round_ in range(30):
        backend.enqueue_many([Job(task="t", args=["x" * 200]) for _ in range(100)])
        pending: list[Completion] = []
        while True:
            _, claimed, _ = backend.exchange(pending, ["default"], 32, 60, "w", start_now=32)
            pending = [Completion(j.id, j.token or 0, Outcome(kind="succeeded", result="y" * 200)) for j in claimed]
            if not claimed and not pending:
                break
        reader.execute("SELECT COUNT(*) FROM jobs").fetchone()
        biggest = max(biggest, backend.db.wal_size())
        if round_ % 10 == 9:
            backend.purge()
    assert backend.counts() == {}
    backend.sweep()
    assert backend.db.wal_size() <= limit
    assert biggest < 16 * 1024 * 1024  # bounded by the auto-checkpoint, not the run length
    reader.close()
    backend.close()


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /mnt/nfs nfs4 rw,relatime 0 0
//host/share /mnt/smb\\040share cifs rw 0 0
/dev/vdb /mnt/nfs/local ext4 rw 0 0
user@h:/x /home/me/remote fuse.sshfs rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


def test_network_share_detection_from_a_mounts_table() -> None:
    assert mount_type("/mnt/nfs/q.db", MOUNTS) == "nfs4"
    assert mount_type("/mnt/nfsx/q.db", MOUNTS) == "ext4"
    reason = network_share_reason("/mnt/nfs/app/.nuvom/result.db", platform="linux", mounts_text=MOUNTS)
    assert reason is not None and "nfs4" in reason
    assert "cifs" in (network_share_reason("/mnt/smb share/q.db", platform="linux", mounts_text=MOUNTS) or "")
    assert "sshfs" in (network_share_reason("/home/me/remote/q.db", platform="linux", mounts_text=MOUNTS) or "")
    assert network_share_reason("/mnt/nfs/local/q.db", platform="linux", mounts_text=MOUNTS) is None
    assert network_share_reason("/tmp/q.db", platform="linux", mounts_text=MOUNTS) is None
    assert network_share_reason("/srv/q.db", platform="linux", mounts_text=MOUNTS) is None


def test_unc_paths_are_network_shares() -> None:
    assert network_share_reason("\\\\server\\share\\q.db", platform="win32") is not None
    assert network_share_reason("//server/share/q.db", platform="win32") is not None
    assert network_share_reason("\\\\?\\UNC\\server\\share\\q.db", platform="win32") is not None
    if sys.platform != "win32":
        assert network_share_reason("C:\\work\\q.db", platform="win32") is None


def test_backend_refuses_a_network_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database_module, "network_share_reason", lambda p: f"{p} is on a nfs4 network file system")
    with pytest.raises(ConfigError, match=r"nfs4.*local disk"):
        SqliteBackend(tmp_path / "q.db")
    assert not (tmp_path / "q.db").exists()


def test_factory_makes_a_new_object_per_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app owns its store: no process-wide cache, two calls are two objects."""
    settings = NuvomSettings()
    monkeypatch.setenv("NUVOM_PROJECT_ROOT", str(tmp_path))
    first = make_backend(settings, SqliteOptions(path="data/q.db"))
    second = make_backend(settings, {"path": "data/q.db"})
    assert first is not second
    assert first.path == second.path == (tmp_path / "data" / "q.db").resolve()
    first.close()
    job = second.enqueue(Job(task="t"))  # closing one object leaves the other working
    assert second.get(job.id) is not None
    second.close()
    with pytest.raises(ConfigError, match=r"sqlite setting pth \(from options\) is unknown; sqlite accepts: path"):
        make_backend(settings, {"pth": "x"})


def test_registers_one_store_with_every_role() -> None:
    registered: list[tuple[str, object, tuple[str, ...], str | None]] = []

    def register(name: str, factory: object, *, roles: tuple[str, ...], description: str | None = None) -> None:
        registered.append((name, factory, tuple(roles), description))

    nuvom_register_storage(register)
    assert registered == [("sqlite", make_backend, ("queue", "jobs", "results", "workers", "schedules"), registered[0][3])]


def test_entry_point_is_declared() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="nuvom")}
    assert names.get("nuvom-backend-sqlite") == "nuvom_backend_sqlite.plugin"


#: The jobs table of versions 1 and 2: the whole job as JSON in ``data``.
_V2_TABLE = (
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, queue TEXT NOT NULL, priority INTEGER NOT NULL, "
    "ready_at REAL NOT NULL, created_at REAL NOT NULL, finished_at REAL, unique_key TEXT, token INTEGER, "
    "lease_expires_at REAL, task TEXT NOT NULL, data TEXT NOT NULL)"
)
_V1_INDEXES = (
    "CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running'",
    "CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key) WHERE unique_key IS NOT NULL "
    "AND state IN ('queued','scheduled','running')",
)
_V2_INDEXES = (
    "CREATE INDEX jobs_lease2 ON jobs (lease_expires_at) WHERE state IN ('claimed','running')",
    "CREATE UNIQUE INDEX jobs_unique2 ON jobs (unique_key) WHERE unique_key IS NOT NULL "
    "AND state IN ('queued','scheduled','claimed','running')",
)


def _old_file(path: Path, version: int, jobs: list[Job], leases: dict[str, float]) -> None:
    """A file as versions 1 and 2 wrote it (the lease column overrides the JSON)."""
    conn = sqlite3.connect(path)
    conn.execute(_V2_TABLE)
    for statement in _V1_INDEXES if version == 1 else _V2_INDEXES:
        conn.execute(statement)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('token', 7)")
    for job in jobs:
        conn.execute(
            "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (job.id, job.state.value, job.queue, job.priority, job.eta or job.created_at, job.created_at,
             job.finished_at, job.unique_key, job.token, leases.get(job.id), job.task, job.to_json()),
        )
    conn.execute("INSERT INTO jobs (id, state, queue, priority, ready_at, created_at, task, data) "
                 "VALUES ('broken', 'queued', 'default', 0, 1, 1, 't', '{not json')")
    conn.execute(f"PRAGMA user_version={version}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_file_is_migrated_and_keeps_its_jobs_whole(tmp_path: Path, version: int) -> None:
    from nuvom_kernel.models import ErrorInfo, apply_outcome
    from nuvom_support.backend_base import claim_update, enqueue_update, start_update

    queued = enqueue_update(Job(id="old-job", task="t", unique_key="k", kwargs={"a": [1, None]}))
    done = enqueue_update(Job(id="done-job", task="t", max_retries=1, tags=["x"]))
    start_update(claim_update(done, 5, 30, "w0"))
    apply_outcome(done, Outcome(kind="retry", error=ErrorInfo(type="E", message="boom", traceback="tb"), note="again"))
    start_update(claim_update(done, 6, 30, "w0"))
    apply_outcome(done, Outcome(kind="succeeded", result={"r": [1, {"n": None}]}))
    running = enqueue_update(Job(id="running-job", task="t"))
    start_update(claim_update(running, 7, 30, "w1"))
    running.progress = {"pct": 50}
    _old_file(tmp_path / "q.db", version, [queued, done, running], {"running-job": running.lease_expires_at + 100})
    backend = SqliteBackend(tmp_path / "q.db")
    try:
        conn = sqlite3.connect(tmp_path / "q.db")
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "jobs_unique" not in names and "jobs_unique2" in names
        assert "jobs_queue_state" not in names and "jobs_queue_state_ready" in names
        # the cold part only stays in the JSON
        assert '"history"' not in conn.execute("SELECT data FROM jobs WHERE id = 'done-job'").fetchone()[0]
        conn.close()
        assert backend.get("done-job") == done
        assert backend.get("old-job") == queued
        lease = running.lease_expires_at + 100
        assert backend.get("running-job") == running.model_copy(update={"lease_expires_at": lease})
        # the undecodable row is still quarantined when touched
        claimed = backend.claim(["default"], 5, 30, "w")
        assert [j.id for j in claimed] == ["old-job"] and claimed[0].token > 7  # the counter goes on
        assert claimed[0].state == JobState.CLAIMED and claimed[0].kwargs == {"a": [1, None]}
        broken = backend.get("broken")
        assert broken is not None and broken.state == JobState.DEAD and "quarantined" in (broken.reason or "")
        assert backend.enqueue(Job(task="t", unique_key="k")).id == "old-job"  # the key is held while claimed
        assert backend.finish("running-job", 7, Outcome(kind="succeeded", result=3))
        finished = backend.get("running-job")
        assert finished is not None and finished.result == 3 and finished.progress == {"pct": 50}
        assert [t.state for t in finished.history][-3:] == [JobState.CLAIMED, JobState.RUNNING, JobState.SUCCEEDED]
    finally:
        backend.close()


def test_oldest_queued_seeks_the_index_instead_of_scanning_queued_jobs(tmp_path: Path) -> None:
    """A metrics scrape asks for it every time: it must not read every queued row (issue 14)."""
    from nuvom_backend_sqlite.admin import _OLDEST_QUEUED_SQL

    backend = SqliteBackend(tmp_path / "q.db")
    try:
        backend.enqueue_many([Job(task="t", queue=f"q{i % 3}", created_at=1000.0 - i) for i in range(30)])
        assert backend.oldest_queued_at() == 1000.0 - 29
        conn = sqlite3.connect(tmp_path / "q.db")
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + _OLDEST_QUEUED_SQL)]
        conn.close()
        jobs_steps = [step for step in plan if " jobs" in f" {step}"]
        assert jobs_steps and all("USING COVERING INDEX jobs_queue_state_ready" in s for s in jobs_steps), plan
    finally:
        backend.close()


def test_a_version_3_file_gets_the_ready_at_index(tmp_path: Path) -> None:
    SqliteBackend(tmp_path / "q.db").close()
    conn = sqlite3.connect(tmp_path / "q.db")
    conn.execute("DROP INDEX jobs_queue_state_ready")
    conn.execute("CREATE INDEX jobs_queue_state ON jobs (queue, state)")  # as version 3 had it
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    SqliteBackend(tmp_path / "q.db").close()
    conn = sqlite3.connect(tmp_path / "q.db")
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert version == SCHEMA_VERSION == 5
    assert "jobs_queue_state_ready" in names and "jobs_queue_state" not in names


def test_a_version_4_file_gets_the_listing_indexes_and_keeps_its_jobs(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "q.db")
    stored = backend.enqueue_many([Job(task=f"t{i % 2}", created_at=1000.0 + i) for i in range(10)])
    backend.close()
    conn = sqlite3.connect(tmp_path / "q.db")
    for name in ("jobs_listing", "jobs_state_listing"):
        conn.execute(f"DROP INDEX {name}")
    conn.execute("CREATE INDEX jobs_created ON jobs (created_at)")  # as version 4 had it
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()
    backend = SqliteBackend(tmp_path / "q.db")
    try:
        conn = sqlite3.connect(tmp_path / "q.db")
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        conn.close()
        assert {"jobs_listing", "jobs_state_listing"} <= names and "jobs_created" not in names
        page = backend.query_jobs(JobFilter(task="t1"), limit=3)
        assert [j.id for j in page.jobs] == [j.id for j in reversed(stored) if j.task == "t1"][:3]
    finally:
        backend.close()


@pytest.mark.parametrize(("filter_", "index"), [
    (JobFilter(states=frozenset({JobState.FAILED})), "jobs_state_listing"),
    (JobFilter(states=frozenset({JobState.FAILED, JobState.DEAD})), "jobs_state_listing"),
    (JobFilter(task="mail.send"), "jobs_listing"),
    (JobFilter(task="mail.send", queue="mail"), "jobs_listing"),
    (JobFilter(), "jobs_listing"),
    (JobFilter(search="cus_42"), "jobs_listing"),
    (JobFilter(since=1000.0), "jobs_listing"),
])
def test_listing_seeks_an_index_instead_of_walking_every_job(tmp_path: Path, filter_: JobFilter,
                                                              index: str) -> None:
    """The dashboard's lists filtered by state or task, and search, on a big table (issue 14):
    each is answered from its index, so a filter that matches few of many jobs stays cheap."""
    backend = SqliteBackend(tmp_path / "q.db")
    asked: list[tuple[str, Any]] = []
    try:
        backend.enqueue_many([Job(task="t", created_at=1000.0 + i) for i in range(20)])
        original = backend.db.query

        def traced(statement: str, params: Any = ()) -> Any:
            asked.append((statement, params))
            return original(statement, params)
        backend.db.query = traced  # type: ignore[method-assign]
        backend.query_jobs(filter_, limit=5)
        statement, params = next((s, p) for s, p in asked if s.startswith("SELECT") and "FROM jobs" in s)
        conn = sqlite3.connect(tmp_path / "q.db")
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params))
        conn.close()
        assert f"INDEX {index}" in plan, plan
        assert "TEMP B-TREE" not in plan or len(filter_.states or ()) > 1, plan  # no sort of every match
    finally:
        backend.close()
