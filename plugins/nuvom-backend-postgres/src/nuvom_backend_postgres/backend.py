"""The PostgreSQL backend's hot paths: enqueue, exchange (finish + start + claim), leases.

Operator and read-side methods live in :mod:`nuvom_backend_postgres.admin`.
A worker's round trip (:meth:`PostgresBackend.exchange`) is one pipelined
transaction of at most three statements (finish a batch, start a batch,
claim a batch); the claim is one ``UPDATE ... FROM (SELECT ... FOR UPDATE
SKIP LOCKED)`` that also takes over jobs whose lease expired, so a dead
worker's jobs run again without anyone running a sweeper.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import psycopg

from nuvom_backend_postgres import queries
from nuvom_backend_postgres.admin import AdminMixin
from nuvom_backend_postgres.db import Database
from nuvom_backend_postgres.idle import NEXT_DUE_SQL, IdlePolls, due_time
from nuvom_backend_postgres.rows import (
    INSERT_COLUMNS,
    INSERT_TYPES,
    JOB_COLUMNS,
    decode,
    errors_json,
    insert_values,
    json_or_none,
    read_job,
    transpose,
)
from nuvom_backend_postgres.schedules import PostgresSchedules
from nuvom_backend_postgres.schema import LIVE, check_schema_name, ensure
from nuvom_backend_postgres.wakeup import Listener, channel_name
from nuvom_kernel.contracts import Beat, Completion, Exchanged, Swept
from nuvom_kernel.errors import ConfigError, CorruptJobError
from nuvom_kernel.models import Job, JobState, WorkerInfo
from nuvom_support.backend_base import Doorbell, QueueBackendBase, ViaExchange, enqueue_update

log = logging.getLogger("nuvom.postgres")

#: The caller's connection for :func:`in_transaction` (per thread and task).
_CALLER_CONN: contextvars.ContextVar[psycopg.Connection[Any] | None] = contextvars.ContextVar(
    "nuvom_postgres_caller_conn", default=None)


@contextlib.contextmanager
def in_transaction(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """Enqueue on ``conn`` (a psycopg 3 connection) inside its current transaction.

    Within the block, every job the postgres backend enqueues (``task.delay()``,
    ``enqueue_many``...) is written through ``conn`` and commits or rolls back
    with the caller's transaction: the job exists if and only if it commits.
    Its wake-up (NOTIFY) is part of that transaction too.
    """
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(
            f"in_transaction needs a psycopg 3 connection, got {type(conn).__name__}: with SQLAlchemy pass "
            "session.connection().connection.driver_connection, with Django django.db.connection.connection "
            "(both with their psycopg 3 driver)"
        )
    token = _CALLER_CONN.set(conn)
    try:
        yield conn
    finally:
        _CALLER_CONN.reset(token)


def _insert_sql() -> str:
    cols = ", ".join(INSERT_COLUMNS)
    arrays = ", ".join(f"%s::{'text' if t == 'jsonb' else t}[]" for t in INSERT_TYPES)
    values = ", ".join(f"u.{c}::jsonb" if t == "jsonb" else f"u.{c}" for c, t in zip(INSERT_COLUMNS, INSERT_TYPES))
    return (
        f"INSERT INTO {{s}}.jobs ({cols}) SELECT {values} FROM unnest({arrays}) AS u({cols}) "
        "WHERE NOT EXISTS (SELECT 1 FROM {s}.jobs_done d WHERE d.id = u.id) "
        "ON CONFLICT DO NOTHING RETURNING id"
    )


INSERT_SQL = _insert_sql()


def _insert_one_sql() -> str:
    """:data:`INSERT_SQL` for one job, with one parameter per column: psycopg
    dumps 26 one-element arrays about a hundred times slower than 26 values
    (measured 0.68 ms against 7 us), and a single enqueue is the common case."""
    cols = ", ".join(INSERT_COLUMNS)
    values = ", ".join("(%s::text)::jsonb" if t == "jsonb" else f"%s::{t}" for t in INSERT_TYPES)
    return (
        f"INSERT INTO {{s}}.jobs ({cols}) SELECT * FROM (VALUES ({values})) AS u({cols}) "
        "WHERE NOT EXISTS (SELECT 1 FROM {s}.jobs_done d WHERE d.id = u.id) "
        "ON CONFLICT DO NOTHING RETURNING id"
    )


INSERT_ONE_SQL = _insert_one_sql()


def insert_statement(jobs: Sequence[Job]) -> tuple[str, Any]:
    """The insert of ``jobs`` and its parameters ({s} not yet replaced)."""
    if len(jobs) == 1:
        return INSERT_ONE_SQL, insert_values(jobs[0])
    return INSERT_SQL, transpose([insert_values(job) for job in jobs])

#: Claims start at the last claimed job's place in the claim index, except one
#: from the front at least this often per queue set: jobs released, requeued
#: or come due behind that place wait at most this long (a claim that finds
#: nothing from that place looks from the front in the same statement).
FRONT_EVERY_SECS = 1.0


class PostgresBackend(PostgresSchedules, AdminMixin, ViaExchange, QueueBackendBase):
    """Queue, job store, results, worker registry and schedules in one PostgreSQL schema.

    Opening is lazy: the first call connects and migrates the schema (when
    ``migrate``).  ``conninfo`` is a libpq connection string (see
    :func:`nuvom_backend_postgres.db.parse_conninfo`); it is never logged.
    """

    capabilities = frozenset({"queue", "jobs", "results", "workers", "schedules"})

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "nuvom",
        pool_size: int = 8,
        wakeups: str = "notify",
        migrate: bool = True,
        retention_secs: float | None = 7 * 86400.0,
        keep_hot_secs: float = 60.0,
        maintenance_secs: float = 30.0,
        idle_poll_secs: float = 10.0,
        connect_timeout: float = 10.0,
        retry_secs: float = 3.0,
        empty_on_open: bool = False,
    ) -> None:
        super().__init__()
        if wakeups not in ("notify", "poll"):
            raise ConfigError(f"invalid postgres.wakeups {wakeups!r}: use 'notify' or 'poll' (PgBouncer transaction mode)")
        self.schema = check_schema_name(schema)
        self.wakeups = wakeups
        self.migrate = migrate
        self.retention_secs = retention_secs
        self.keep_hot_secs = keep_hot_secs
        self.maintenance_secs = maintenance_secs
        self.empty_on_open = empty_on_open
        self.db = Database(conninfo, max_size=pool_size, prepare=wakeups == "notify",
                           connect_timeout=connect_timeout, retry_secs=retry_secs)
        self.channel = channel_name(self.schema)
        self._q = f'"{self.schema}"'  # validated: a-z 0-9 _ only
        self._ready = False
        self._ready_lock = threading.Lock()
        self._listener: Listener | None = None
        self._last_maintenance = 0.0
        self._sql: dict[str, str] = {}
        key = f"nuvom-ids:{self.schema}"
        self._ids_lock_shared = f"SELECT pg_advisory_xact_lock_shared(hashtext('{key}'))"
        self._ids_lock = f"SELECT pg_advisory_xact_lock(hashtext('{key}'))"
        self._ids_lock_key = key
        #: idle claims answered without a query while LISTEN is healthy (see :mod:`.idle`)
        self.idle = IdlePolls(idle_poll_secs if wakeups == "notify" else 0.0, self._listening)
        self.doorbell.subscribe(self.idle.ring)
        #: rung when a schedule is added or changes state, here or (NOTIFY) elsewhere
        self.schedule_bell = Doorbell()
        #: per queue: (priority, ready_at, id) of the last job claimed in claim order
        self._floor: dict[str, tuple[int, float, str]] = {}
        #: per queue set: time.monotonic() of the last claim from the front
        self._front_at: dict[tuple[str, ...], float] = {}

    def _listening(self) -> bool:
        listener = self._listener
        return listener is not None and listener.listening.is_set()

    def __repr__(self) -> str:
        return f"PostgresBackend({self.db.where!r}, schema={self.schema!r})"

    def q(self, statement: str) -> str:
        """``statement`` with ``{s}`` replaced by the quoted schema (cached)."""
        done = self._sql.get(statement)
        if done is None:
            done = self._sql[statement] = statement.replace("{s}", self._q)
        return done

    # -- opening ---------------------------------------------------------------

    def open(self) -> None:
        """Connect and bring the schema up to date (once; later calls return at once)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return

            def prepare(conn: psycopg.Connection[Any]) -> None:
                ensure(conn, self.schema, auto=self.migrate)
                if self.empty_on_open:
                    conn.execute(self.q("TRUNCATE {s}.jobs, {s}.jobs_done, {s}.workers, {s}.schedules"))

            self.db.run(prepare)
            self.db.server_now()  # measure the clock offset
            self._ready = True

    def _run(self, operation: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        self.open()
        return self.db.run(operation)

    def now(self) -> float:
        """The server's clock as this host estimates it (exact to a round trip)."""
        self.open()
        return self.db.now()

    # -- enqueue -----------------------------------------------------------------

    def enqueue(self, job: Job) -> Job:
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Store ``jobs`` in one transaction (in the caller's, inside
        :func:`in_transaction`).  A job whose id is already stored, or whose
        ``unique_key`` a live job holds, is not added: the stored job is
        returned in its place."""
        jobs = list(jobs)
        if not jobs:
            return []
        self.open()
        at = self.db.now()
        for job in jobs:
            enqueue_update(job, at)
        caller = _CALLER_CONN.get()
        if caller is not None:
            if not caller.autocommit and caller.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                # the first statement opens the caller's transaction, which the caller commits
                # (psycopg's transaction() would commit it when the block ends)
                return self._enqueue_in(caller, jobs)[0]
            # inside the caller's transaction: a savepoint; an autocommit connection
            # outside any transaction: a transaction of our own
            with caller.transaction():
                result, ready = self._enqueue_in(caller, jobs)
            return result

        def txn(conn: psycopg.Connection[Any]) -> tuple[list[Job], bool]:
            inserted = self._insert_at_once(conn, jobs)
            result: list[Job | None] = []
            rest: list[Job] = []
            for job in jobs:  # the first of each inserted id is stored as given
                if job.id in inserted:
                    inserted.discard(job.id)
                    result.append(job)
                else:
                    result.append(None)
                    rest.append(job)
            ready = any(job is not None and job.state == JobState.QUEUED for job in result)
            if rest:  # an id already stored, or a unique key held: settle those in a transaction
                with conn.pipeline(), conn.transaction():  # BEGIN travels with the first statements
                    settled, more = self._enqueue_in(conn, rest)
                ready = ready or more
                others = iter(settled)
                result = [job if job is not None else next(others) for job in result]
            return [job for job in result if job is not None], ready

        result, ready = self.db.run(txn)
        if ready:
            self.doorbell.ring()
        else:
            self.idle.ring()  # a scheduled job: the next claim asks when it is due
        return result

    def _insert_at_once(self, conn: psycopg.Connection[Any], jobs: list[Job]) -> set[str]:
        """The id lock, the insert and the wake-up in ONE round trip: pipelined
        without a Sync in between, they form one implicit transaction that the
        Sync at the end commits (each statement with its own snapshot, so the
        insert sees what the history mover committed before the lock was
        granted).  Returns the ids inserted (an id already stored is not)."""
        notify = self.wakeups == "notify" and any(job.state in (JobState.QUEUED, JobState.SCHEDULED) for job in jobs)
        with conn.pipeline():
            conn.execute(self._ids_lock_shared)
            statement, params = insert_statement(jobs)
            cursor = conn.execute(self.q(statement), params)
            if notify:
                conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
        return {row[0] for row in cursor.fetchall()}  # read after the Sync: one round trip in all

    def _enqueue_in(self, conn: psycopg.Connection[Any], jobs: list[Job]) -> tuple[list[Job], bool]:
        result = list(jobs)
        todo = list(range(len(jobs)))
        ready = False
        # scheduled jobs too: idle workers of other processes learn when they come due
        notify = self.wakeups == "notify" and any(job.state in (JobState.QUEUED, JobState.SCHEDULED) for job in jobs)
        for _ in range(10):
            statement, params = insert_statement([jobs[i] for i in todo])
            with conn.pipeline():  # lock + insert (+ the wake-up) in one round trip
                conn.execute(self._ids_lock_shared)  # excludes the history mover: see admin.maintain
                cursor = conn.execute(self.q(statement), params)
                if notify:  # delivered only if the transaction commits; duplicates fold into one
                    conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
                    notify = False
                inserted = {row[0] for row in cursor.fetchall()}
            firsts: set[str] = set()
            missing: list[int] = []
            for i in todo:
                job = jobs[i]
                if job.id in inserted and job.id not in firsts:
                    firsts.add(job.id)
                    ready = ready or job.state == JobState.QUEUED
                else:
                    missing.append(i)
            if not missing:
                break
            todo = self._resolve_existing(conn, jobs, missing, result)
            if not todo:
                break
        else:  # pragma: no cover - a unique key changing hands ten times during one enqueue
            raise RuntimeError("enqueue could not settle a unique key that kept changing hands; try again")
        return result, ready

    def _resolve_existing(self, conn: psycopg.Connection[Any], jobs: list[Job], missing: list[int],
                          result: list[Job]) -> list[int]:
        """Jobs not inserted: hand back the stored job with the same id, else
        the live holder of the unique key; returns those to insert again (their
        key's holder finished in between)."""
        ids = list({jobs[i].id for i in missing})
        stored: dict[str, Job] = {}
        for row in conn.execute(self.q(
            f"SELECT {JOB_COLUMNS} FROM {{s}}.jobs WHERE id = ANY(%(ids)s) UNION ALL "
            f"SELECT {JOB_COLUMNS} FROM {{s}}.jobs_done WHERE id = ANY(%(ids)s)"), {"ids": ids}).fetchall():
            stored.setdefault(row[0], decode(row))
        keys = list({jobs[i].unique_key for i in missing if jobs[i].id not in stored and jobs[i].unique_key})
        holders: dict[str, Job] = {}
        if keys:
            for row in conn.execute(self.q(
                f"SELECT unique_key, {JOB_COLUMNS} FROM {{s}}.jobs WHERE unique_key = ANY(%(keys)s) AND state IN {LIVE}"),
                    {"keys": keys}).fetchall():
                holders[row[0]] = decode(row[1:])
        again: list[int] = []
        for i in missing:
            job = jobs[i]
            if job.id in stored:
                result[i] = stored[job.id]
            elif job.unique_key and job.unique_key in holders:
                result[i] = holders[job.unique_key]
            else:
                again.append(i)
        return again

    # -- claim, start, finish ----------------------------------------------------

    @staticmethod
    def _finish_params(completions: Sequence[Completion]) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {k: [] for k in ("ids", "tokens", "kinds", "results", "errors", "delays",
                                                       "reasons", "notes", "ords")}
        for index, c in enumerate(completions):
            o = c.outcome
            cols["ids"].append(c.job_id)
            cols["tokens"].append(c.token)
            cols["kinds"].append(o.kind)
            cols["results"].append(json_or_none(o.result) if o.kind == "succeeded" else None)
            cols["errors"].append(errors_json([o.error]) if o.error is not None else None)
            cols["delays"].append(None if o.eta is None else max(0.0, o.eta - o.at))
            cols["reasons"].append(o.reason)
            cols["notes"].append(o.note)
            cols["ords"].append(index)
        return cols

    def exchange(
        self,
        completions: Sequence[Completion],
        queues: Sequence[str],
        limit: int,
        lease_secs: float,
        worker_id: str,
        *,
        starts: Mapping[str, int] | None = None,
        start_now: int = 0,
    ) -> Exchanged:
        """Finish ``completions``, start ``starts`` and claim up to ``limit``
        jobs: one (implicit) transaction, its statements pipelined into one round trip."""
        return self._exchange(completions, queues, limit, lease_secs, worker_id, starts, start_now)

    def _floors(self, key: tuple[str, ...]) -> dict[str, list[Any]] | None:
        """Where the next claim of ``key`` may start (see :data:`queries.CLAIM_FROM_FLOOR_SQL`),
        or ``None``: claim from the front (every :data:`FRONT_EVERY_SECS`, or no floor yet)."""
        if time.monotonic() - self._front_at.get(key, -FRONT_EVERY_SECS) >= FRONT_EVERY_SECS:
            return None
        floors = [self._floor.get(q) for q in key]
        if any(f is None for f in floors):
            return None
        return {"fp": [f[0] for f in floors if f], "fr": [f[1] for f in floors if f], "fi": [f[2] for f in floors if f]}

    def _exchange(self, completions: Sequence[Completion], queues: Sequence[str], limit: int, lease_secs: float,
                  worker_id: str, starts: Mapping[str, int] | None, start_now: int) -> Exchanged:
        wanted = list(dict.fromkeys(queues)) if limit > 0 else []
        if not completions and not starts and not wanted:
            return Exchanged([], [], set())
        finish = self._finish_params(completions) if completions else None
        start = {"ids": list(starts), "tokens": list(starts.values())} if starts else None
        claim = ({"queues": wanted, "limit": limit, "lease": float(lease_secs), "worker": worker_id,
                  "start_now": start_now} if wanted else None)

        key = tuple(wanted)
        only_claim = claim is not None and not finish and not start
        if only_claim and self.idle.may_skip(key, self.db.now()):
            return Exchanged([], [], set())
        ask_due = only_claim and self.idle.wants_next_due(key)
        due: list[Any] = []
        claim_sql = queries.CLAIM_SQL
        floors = None if claim is None or ask_due else self._floors(key)
        if floors is not None:
            claim_sql = queries.CLAIM_FROM_FLOOR_SQL
            claim = {**claim, **floors}  # type: ignore[dict-item]
        elif claim is not None:
            self._front_at[key] = time.monotonic()

        def txn(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any], list[Any]]:
            if only_claim and not ask_due:  # one statement, its own transaction
                return [], [], conn.execute(self.q(claim_sql), claim).fetchall()
            # Pipelined with no Sync in between, the statements are ONE implicit
            # transaction that the Sync at the pipeline's end commits (an error in
            # any rolls back all): one network round trip.  (psycopg's
            # conn.transaction() inside a pipeline syncs at BEGIN, at the end of
            # the block and at COMMIT: three more round trips.)  Results are read
            # after the Sync, so nothing forces an earlier one.  A client-side error
            # (a parameter psycopg cannot send) could only come from the finish's
            # outcome texts, and the finish goes first: nothing is queued before it.
            before = time.time()
            with conn.pipeline():
                fc = conn.execute(self.q(queries.FINISH_SQL), finish) if finish else None
                sc = conn.execute(self.q(queries.START_SQL), start) if start else None
                cc = conn.execute(self.q(claim_sql), claim) if claim else None
                asking = conn.execute(self.q(NEXT_DUE_SQL), {"queues": wanted}) if ask_due else None
            if asking is not None:
                due[:] = [before, asking.fetchone(), time.time()]
            return (fc.fetchall() if fc else [], sc.fetchall() if sc else [], cc.fetchall() if cc else [])

        sent = self.idle.before_claim() if claim is not None else None
        finished, started_rows, claimed_rows = self._run(txn)
        if sent is not None:
            next_due = None
            if due and due[1] is not None:
                before, (server, first_due), after = due
                self.db.observe_clock(before, float(server), after)
                next_due = due_time(first_due)
            self.idle.after_claim(key, sent, len(claimed_rows), next_due)
        accepted = [False] * len(completions)
        requeued = False
        for ordinal, new_state in finished:
            accepted[ordinal] = True
            # a delayed retry too: other processes' idle workers learn when it is due
            requeued = requeued or new_state in ("queued", "scheduled")
        claimed: list[Job] = []
        corrupt: list[tuple[str, str]] = []
        for row in sorted(claimed_rows, key=lambda r: r[0]):
            if row[1]:  # dies: its lease expired once too often
                continue
            queue, floor = row[2], (row[3], row[4], row[5])
            known = self._floor.get(queue)
            if known is None or (-floor[0], floor[1], floor[2]) > (-known[0], known[1], known[2]):
                self._floor[queue] = floor
            try:
                claimed.append(decode(row[5:]))
            except CorruptJobError as exc:
                corrupt.append((row[5], str(exc)))
        if corrupt:
            self._bury(corrupt)
        if requeued:
            self._wake_others()
        return Exchanged(accepted, claimed, {row[0] for row in started_rows})

    def _bury(self, corrupt: list[tuple[str, str]]) -> None:
        """Claimed rows that cannot be decoded: ``dead`` with the reason, never retried."""

        def txn(conn: psycopg.Connection[Any]) -> None:
            for job_id, reason in corrupt:
                conn.execute(self.q(
                    "UPDATE {s}.jobs SET state = 'dead', token = NULL, lease_expires_at = NULL, worker_id = NULL, "
                    "unique_key = NULL, reason = %s, finished_at = extract(epoch FROM clock_timestamp())::float8, "
                    "updated_at = extract(epoch FROM clock_timestamp())::float8 WHERE id = %s"),
                    (f"corrupt stored job, quarantined: {reason}", job_id))

        self._run(txn)

    def _wake_others(self) -> None:
        """Work became claimable outside an enqueue (a retry, a release, a sweep)."""
        self.doorbell.ring()
        if self.wakeups == "notify":
            try:
                self._run(lambda conn: conn.execute("SELECT pg_notify(%s, '')", (self.channel,)))
            except psycopg.Error:  # a hint only: polling finds the work anyway
                pass

    # -- leases ------------------------------------------------------------------

    def renew(self, leases: Mapping[str, int], lease_secs: float) -> set[str]:
        return self.heartbeat(None, leases, lease_secs).lost

    def heartbeat(self, worker: WorkerInfo | None, leases: Mapping[str, int], lease_secs: float) -> Beat:
        """Registration, renewal (or a check only when ``lease_secs`` is 0) and
        cancellation requests: one pipelined round trip."""
        if worker is None and not leases:
            return Beat(set(), set())
        held = {"ids": list(leases), "tokens": list(leases.values()), "lease": float(lease_secs)}

        def op(conn: psycopg.Connection[Any]) -> list[Any]:
            with conn.pipeline():
                if worker is not None:
                    conn.execute(self.q(queries.REGISTER_WORKER_SQL),
                                 {"id": worker.id, "at": worker.heartbeat_at, "data": worker.model_dump_json()})
                if not leases:
                    return []
                statement = queries.RENEW_SQL if lease_secs > 0 else queries.HELD_SQL
                return conn.execute(self.q(statement), held).fetchall()

        rows = self._run(op)
        kept = {row[0] for row in rows}
        return Beat(set(leases) - kept, {row[0] for row in rows if row[1]})

    def release(self, job_id: str, token: int) -> bool:
        rows = self._run(lambda conn: conn.execute(self.q(queries.RELEASE_SQL), {"id": job_id, "token": token}).fetchall())
        if rows:
            self._wake_others()
        return bool(rows)

    def sweep(self) -> Swept:
        """Return expired leases to the queue (claims also do this for their
        queues), and every ``maintenance_secs`` move finished jobs to the
        history table and delete those past the retention period."""
        rows = self._run(lambda conn: conn.execute(self.q(queries.SWEEP_SQL)).fetchall())
        dead: list[tuple[Job, Job]] = []
        for dies, old_worker, old_token, old_lease, old_reason, *cols in rows:
            if dies:
                after = read_job(cols)
                dead.append((self._before_death(after, old_worker, old_token, old_lease, old_reason), after))
        if len(dead) < len(rows):
            self._wake_others()
        if time.monotonic() - self._last_maintenance >= self.maintenance_secs:
            self._last_maintenance = time.monotonic()
            self.maintain()
        return Swept(len(rows), dead)

    @staticmethod
    def _before_death(after: Job, worker: str | None, token: int | None, lease: float | None,
                      reason: str | None) -> Job:
        """The running job as it was before :data:`queries.SWEEP_SQL` made it dead
        (``sweep_update`` undone: the attempt it uncharged, the expiry it counted)."""
        before = after.snapshot()
        before.state = JobState.RUNNING
        before.attempts += 1
        before.lease_expiries -= 1
        before.finished_at = None
        before.reason = reason
        before.token, before.lease_expires_at, before.worker_id = token, lease, worker
        before.history = before.history[:-1]
        return before

    # -- wake-ups and lifetime ---------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """``callback`` runs when another process enqueues work (NOTIFY), or this one does."""
        unsubscribe = self.doorbell.subscribe(callback)
        if self.wakeups == "notify":
            self._start_listener()
        return unsubscribe

    def subscribe_schedules(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """``callback`` runs when a schedule is added, replaced, paused or resumed,
        by this process or (``NOTIFY``) another; after the ``LISTEN`` connection
        was lost it runs once.  ``None`` in poll mode: nothing will tell."""
        if self.wakeups != "notify":
            return None
        unsubscribe = self.schedule_bell.subscribe(callback)
        self._start_listener()
        return unsubscribe

    def _start_listener(self) -> None:
        self.open()
        with self._ready_lock:
            if self._listener is None:
                self._listener = Listener(self.db.connect, self.channel, self.doorbell, self.db.where,
                                          self.schedule_bell)
            self._listener.start()
            listener = self._listener
        # work enqueued after subscribe() returns must wake the callback: wait for LISTEN
        # (bounded: with the server down the listener keeps trying and polling covers it)
        listener.listening.wait(self.db.connect_timeout)

    def close(self) -> None:
        """Stop the listener and close the pool.  Idempotent; a later call on the
        object connects again."""
        with self._ready_lock:
            listener, self._listener = self._listener, None
            self._ready = False
        self.idle.forget()
        if listener is not None:
            listener.stop()
        self.db.close()
