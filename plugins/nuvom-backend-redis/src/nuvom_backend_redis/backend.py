"""The Redis backend: queue, job store, result store and worker registry.

Every state change is one Lua script (:mod:`nuvom_backend_redis.scripts`)
that reads the server's clock; this module encodes the arguments, decodes
the replies, and sends a call again after a lost connection (the request
id makes that safe).  Keys (all under one hash tag, ``{ns}``):

``{ns}:job:<id>``         hash: one job (cold JSON + hot fields)
``{ns}:ready:<queue>``    zset: claimable jobs, score -priority, member ready_at:id
``{ns}:delayed:<queue>``  zset: scheduled jobs by eta (promoted by the claim script)
``{ns}:leases``           zset: claimed/running jobs by lease expiry (recovery)
``{ns}:created``          zset: every job by created_at (listing)
``{ns}:finished``         zset: terminal jobs by finished_at (purge, result TTL)
``{ns}:readyat``          zset: claimable jobs by ready_at (oldest waiting)
``{ns}:unique``           hash: unique key -> live job id
``{ns}:counts``           hash: "queue|state" -> number of jobs
``{ns}:token``            counter of fencing tokens
``{ns}:wake``             stream: "work may be claimable" (blocking reads)
``{ns}:workers``          hash: worker id -> registration JSON
``{ns}:queues``           set: queue names seen
``{ns}:reply:<req>``      a script's stored reply (while a resend can come)
``{ns}:sched:*``          schedules (:mod:`nuvom_backend_redis.schedules`)
``{ns}:watch:<id>`` / ``{ns}:done:<id>``  result waiters and their wake-ups
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis
from redis.commands.core import Script

from nuvom_backend_redis import schedules, scripts
from nuvom_backend_redis.codec import (
    decode,
    decode_or_placeholder,
    enqueue_args,
    json_text,
    outcome_args,
    save_args,
)
from nuvom_backend_redis.connection import ConnectionSettings, redact, with_reconnect
from nuvom_backend_redis.schedules import SCHEDULE_SCRIPTS, RedisSchedules
from nuvom_backend_redis.wake import WakeListener
from nuvom_kernel.contracts import (
    Beat,
    Completion,
    Exchanged,
    JobFilter,
    JobPage,
    Swept,
    decode_cursor,
    encode_cursor,
)
from nuvom_kernel.errors import ConfigError, CorruptJobError, InvalidStateError
from nuvom_kernel.models import TERMINAL_STATES, Job, JobState, Outcome, WorkerInfo, validate_id
from nuvom_support.backend_base import ViaExchange

log = logging.getLogger("nuvom.backend.redis")

_NOTES = {JobState.QUEUED: "enqueued", JobState.SCHEDULED: "enqueued with eta"}
_BATCH = 500


class RedisBackend(RedisSchedules, ViaExchange):
    """Queue, job store, results, worker registry and schedules in one Redis namespace.

    ``namespace`` names the hash tag of every key (``{nuvom}``): several
    applications can share one server under different namespaces.
    ``clock_offset_secs`` shifts the server clock the scripts read; it exists
    for tests (a job 2 h ahead without waiting 2 h) and must be 0 otherwise.
    ``idle_recheck_secs``: while the wake-up reader is connected and nothing
    woke it, an idle worker's claims are answered locally and sent to the
    server at most this often.
    """

    capabilities = frozenset({"queue", "jobs", "results", "workers", "schedules"})

    def __init__(self, connection: ConnectionSettings | None = None, *, namespace: str = "nuvom",
                 clock_offset_secs: float = 0.0, idle_recheck_secs: float = 1.0) -> None:
        self.connection = connection or ConnectionSettings()
        if not namespace or any(c in namespace for c in "{}: \t\r\n"):
            raise ConfigError(f"redis namespace {namespace!r}: use letters, digits, '-', '_' or '.' "
                              "(it becomes the hash tag {namespace} of every key)")
        self.namespace = namespace
        self.prefix = "{" + namespace + "}"
        self.clock_offset_secs = float(clock_offset_secs)
        self.idle_recheck_secs = idle_recheck_secs
        self.r = self.connection.client()
        self._scripts: dict[str, Script] = {
            name: self.r.register_script(getattr(scripts, name))
            for name in ("ENQUEUE", "EXCHANGE", "HEARTBEAT", "RELEASE", "SWEEP", "CANCEL", "RETRY", "PROGRESS",
                         "PURGE", "SAVE", "CLOCK")
        }
        self._scripts.update({name: self.r.register_script(getattr(schedules, name)) for name in SCHEDULE_SCRIPTS})
        self.wake = WakeListener(self.connection, self.prefix + ":wake")
        self._last_empty = float("-inf")
        self._due_at: float | None = None
        #: a server that never answered is most likely a wrong url: fail fast
        #: then, and wait out restarts only once it has answered
        self._reached = False
        #: how long a script's reply is kept for a resend: longer than a call keeps resending
        self._reply_ttl = int(self.connection.reconnect_timeout_secs + 2 * self.connection.socket_timeout_secs) + 60

    def __repr__(self) -> str:
        return f"RedisBackend({redact(self.connection.url)!r}, namespace={self.namespace!r})"

    # -- plumbing ----------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _run(self, name: str, args: Sequence[str], *, once: bool = True) -> Any:
        """Run a script; ``once``: with a request id, so a resend after a lost reply is not applied twice."""
        request = f"{self._reply_ttl}:{uuid.uuid4().hex}" if once else ""
        argv = [self.prefix, repr(self.clock_offset_secs), request, *args]
        script = self._scripts[name]
        keys = [self.key("token")]
        return self._call(name.lower(), lambda: script(keys=keys, args=argv, client=self.r))

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        patience = None if self._reached else min(1.0, self.connection.reconnect_timeout_secs)
        result = with_reconnect(fn, self.connection, what, patience=patience)
        self._reached = True
        return result

    def ping(self) -> bool:
        return bool(self._call("ping", self.r.ping))

    def verify(self) -> None:
        """Reach the server (``nuvom runworker`` calls this before its loop, so a
        wrong url or password fails at start) and warn when its memory policy
        may evict keys: an evicted job hash is a lost job."""
        self.ping()
        try:
            memory = self._call("info", lambda: self.r.info("memory"))
        except redis.ResponseError:  # INFO disabled (some managed services): nothing to check
            return
        # a cluster client answers per node
        nodes = [memory] if "maxmemory_policy" in memory else [v for v in memory.values() if isinstance(v, dict)]
        for info in nodes:
            policy = str(info.get("maxmemory_policy", "noeviction"))
            if int(info.get("maxmemory", 0) or 0) > 0 and policy != "noeviction":
                log.warning("redis at %s evicts keys when full (maxmemory-policy %s): jobs can be lost; "
                            "set maxmemory-policy noeviction (docs/backend-redis.md)", redact(self.connection.url),
                            policy)

    def server_time(self) -> float:
        """The clock the scripts read (the server's ``TIME`` plus the offset)."""
        return float(self._run("CLOCK", (), once=False))

    # -- enqueue -------------------------------------------------------------------

    def enqueue(self, job: Job) -> Job:
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Store ``jobs`` in one script: a job whose id is stored, or whose
        ``unique_key`` a live job (or an earlier job of the batch) holds, is
        not added; the stored job is returned in its place."""
        jobs = list(jobs)
        if not jobs:
            return []
        args: list[str] = [str(len(jobs))]
        for job in jobs:
            validate_id(job.id)
            validate_id(job.queue, "queue name")
            job.token = None
            job.lease_expires_at = None
            job.worker_id = None
            args += enqueue_args(job)
        reply = self._run("ENQUEUE", args, once=False)  # idempotent by itself: a resend finds the job stored
        out: list[Job] = []
        for job, item in zip(jobs, reply):
            if item[0] == "new":
                state = JobState(item[1])
                job.record(state, float(item[2]), _NOTES[state])
                out.append(job)
            else:
                out.append(decode_or_placeholder(item))
        return out

    # -- claim, start, finish ------------------------------------------------------

    def _quiet(self) -> bool:
        """Nothing can have become claimable since the last empty claim (the
        wake-up reader is connected and heard nothing, no scheduled job is
        due) and that claim is recent: answer an idle claim locally."""
        if not self.wake.healthy.is_set() or self.wake.dirty.is_set():
            return False
        at = time.monotonic()
        if at - self._last_empty >= self.idle_recheck_secs:
            return False
        return self._due_at is None or at < self._due_at

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
        """Finish ``completions``, start ``starts``, recover a few expired
        leases and claim up to ``limit`` jobs: one script, one round trip."""
        wanted = list(dict.fromkeys(queues)) if limit > 0 else []
        starts = starts or {}
        if not completions and not starts and (not wanted or self._quiet()):
            return Exchanged([], [], set())
        for queue in wanted:
            validate_id(queue, "queue name")
        args: list[str] = [str(len(completions))]
        for completion in completions:
            args += outcome_args(completion)
        args.append(str(len(starts)))
        for job_id, token in starts.items():
            args += [job_id, str(token)]
        args += [worker_id, repr(float(lease_secs)), str(limit if wanted else 0), str(start_now), str(len(wanted)),
                 *wanted]
        if wanted:
            self.wake.dirty.clear()  # a wake-up during the call sets it again
        accepted, started, claimed_fields, due_in, _at = self._run("EXCHANGE", args)
        claimed: list[Job] = []
        for fields in claimed_fields:
            try:
                claimed.append(decode(fields))
            except CorruptJobError as exc:
                self._bury(fields, str(exc))
        if wanted:
            if len(claimed_fields) < limit:
                self._last_empty = time.monotonic()
                self._due_at = None if not due_in else time.monotonic() + max(0.0, float(due_in))
            else:
                self.wake.dirty.set()  # more may be waiting
        return Exchanged([bool(a) for a in accepted], claimed, set(started))

    def _bury(self, fields: Sequence[Any], reason: str) -> None:
        """A claimed job that cannot be decoded is finished as ``dead`` with the reason."""
        log.error("redis: %s; marking it dead", reason)
        token = fields[8]
        if token:
            outcome = Outcome(kind="dead", reason=f"corrupt stored job: {reason}")
            self.exchange((Completion(str(fields[0]), int(token), outcome),), (), 0, 0.0, "")

    # -- leases --------------------------------------------------------------------

    def renew(self, leases: Mapping[str, int], lease_secs: float) -> set[str]:
        if not leases:
            return set()
        return self.heartbeat(None, leases, lease_secs).lost

    def heartbeat(self, worker: WorkerInfo | None, leases: Mapping[str, int], lease_secs: float) -> Beat:
        """Registration, renewal, lost leases and cancellation requests: one script."""
        args = [worker.model_dump_json() if worker else "", worker.id if worker else "", repr(float(lease_secs)),
                str(len(leases))]
        for job_id, token in leases.items():
            args += [job_id, str(token)]
        lost, cancel = self._run("HEARTBEAT", args)
        return Beat(set(lost), set(cancel))

    def release(self, job_id: str, token: int) -> bool:
        return bool(self._run("RELEASE", [job_id, str(token)]))

    def sweep(self) -> Swept:
        """Return expired leases to the queue (``sweep_update``); any process may
        call it.  The claim script recovers a few expired leases too, but leaves
        a job that would die to a sweep, so its death is reported (``Swept.dead``)."""
        total = 0
        dead: list[tuple[Job, Job]] = []
        while True:
            moved, pairs = self._run("SWEEP", [str(_BATCH)])
            total += int(moved)
            dead += [(decode_or_placeholder(before), decode_or_placeholder(after)) for before, after in pairs]
            if int(moved) < _BATCH:
                return Swept(total, dead)

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self.wake.subscribe(callback)

    def subscribe_schedules(self, callback: Callable[[], None]) -> Callable[[], None]:
        """``callback`` runs when a schedule is added, replaced, paused or resumed
        (an entry of the wake stream with the field ``s``), and after the
        wake-up reader reconnected."""
        return self.wake.subscribe_schedules(callback)

    def close(self) -> None:
        """Stop the wake-up reader and close the connections.  Idempotent."""
        self.wake.close()
        self.r.close()

    # -- the job store ---------------------------------------------------------------

    def _fetch(self, ids: Sequence[str]) -> list[Job | None]:
        if not ids:
            return []

        def read() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.key("job", job_id), scripts.FIELDS)
            return pipe.execute()

        return [decode_or_placeholder(v) if v[0] is not None else None for v in self._call("read jobs", read)]

    def get(self, job_id: str) -> Job | None:
        validate_id(job_id)
        return self._fetch([job_id])[0]

    def query_jobs(self, filter: JobFilter | None = None, *, limit: int = 50, cursor: str | None = None) -> JobPage:
        """Newest first by ``(created_at, id)``, walking the ``created`` index
        in pages from the cursor's position."""
        wanted = filter or JobFilter()
        if wanted.states is not None and not wanted.states:
            return JobPage([])
        size = max(0, limit)
        position = decode_cursor(cursor) if cursor else None
        # the score range only narrows the walk; ``matches`` and the cursor rule decide
        if position is not None:
            top = repr(position[0])
        else:
            top = "+inf" if wanted.until is None else f"({wanted.until!r}"
        bottom = "-inf" if wanted.since is None else repr(wanted.since)
        jobs: list[Job] = []
        offset = 0
        while len(jobs) <= size:
            rows = self._call("list jobs", lambda at=offset: self.r.zrevrangebyscore(  # type: ignore[misc]
                self.key("created"), top, bottom, start=at, num=_BATCH, withscores=True))
            if not rows:
                break
            offset += len(rows)
            ids = [job_id for job_id, score in rows
                   if position is None or score < position[0] or (score == position[0] and job_id < position[1])]
            for job in self._fetch(ids):
                if job is not None and wanted.matches(job.state, job.task, job.queue, job.created_at, job.id):
                    jobs.append(job)
            if len(rows) < _BATCH:
                break
        page = jobs[:size]
        more = len(jobs) > size and page
        return JobPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

    def cancel(self, job_id: str, reason: str = "cancelled") -> Job | None:
        """Cancel a queued/scheduled/claimed job at once; flag a running one."""
        validate_id(job_id)
        fields = self._run("CANCEL", [job_id, reason])
        return decode_or_placeholder(fields) if fields else None

    def cancel_requests(self, job_ids: Sequence[str]) -> set[str]:
        ids = list(job_ids)
        if not ids:
            return set()

        def read() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.key("job", job_id), "state", "cancel")
            return pipe.execute()

        return {job_id for job_id, (state, flag) in zip(ids, self._call("read jobs", read))
                if state == "running" and flag == "1"}

    def retry(self, job_id: str) -> Job | None:
        """Re-queue a failed/dead/cancelled job as a new attempt of the same job."""
        validate_id(job_id)
        reply = self._run("RETRY", [job_id])
        if reply[0] == "unique":
            raise InvalidStateError(f"job {job_id} cannot be retried: the live job {reply[1]} holds its unique key")
        return decode_or_placeholder(reply[1]) if reply[0] == "ok" else None

    def set_progress(self, job_id: str, token: int, progress: Any) -> bool:
        return bool(self._run("PROGRESS", [job_id, str(token), json_text(progress)], once=False))

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for field, value in self._call("counts", lambda: self.r.hgetall(self.key("counts"))).items():
            if int(value) > 0:
                queue, _, state = field.rpartition("|")
                out.setdefault(queue, {})[state] = int(value)
        return out

    def oldest_queued_at(self) -> float | None:
        """When the longest-waiting claimable job became claimable (eta or creation)."""
        first = self._call("oldest", lambda: self.r.zrange(self.key("readyat"), 0, 0, withscores=True))
        return float(first[0][1]) if first else None

    def purge(self, *, states: Iterable[JobState] | None = None, older_than: float | None = None) -> int:
        """Delete terminal jobs (only those in ``states``) finished before ``older_than``,
        a batch per script so other clients are never blocked long."""
        wanted = sorted(s.value for s in (TERMINAL_STATES if states is None else set(states) & TERMINAL_STATES))
        if not wanted:
            return 0
        total, offset = 0, 0
        older = "" if older_than is None else repr(float(older_than))
        while True:
            deleted, scanned = self._run("PURGE", [older, str(_BATCH), str(offset), *wanted], once=False)
            total += int(deleted)
            offset += int(scanned) - int(deleted)
            if int(scanned) < _BATCH:
                return total

    # -- workers -------------------------------------------------------------------

    def register_worker(self, info: WorkerInfo) -> None:
        self._call("register worker", lambda: self.r.hset(self.key("workers"), info.id, info.model_dump_json()))

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._call("list workers", lambda: self.r.hgetall(self.key("workers")))
        return [WorkerInfo.model_validate_json(rows[k]) for k in sorted(rows)]

    # -- the result role -------------------------------------------------------------

    def save(self, job: Job) -> None:
        """Store ``job`` as it is (replacing a stored job with its id)."""
        validate_id(job.id)
        self._run("SAVE", save_args(job), once=False)

    def get_result(self, job_id: str) -> Job | None:
        """The finished job; ``None`` while it is live."""
        job = self.get(job_id)
        return job if job is not None and job.is_terminal() else None

    def wait(self, job_id: str, timeout: float | None = None) -> Job | None:
        """Block until the job is finished (a blocking pop the finishing script
        pushes to), or ``timeout`` seconds pass (then ``None``)."""
        job = self.get_result(job_id)
        if job is not None or (timeout is not None and timeout <= 0):
            return job
        deadline = None if timeout is None else time.monotonic() + timeout
        watch, done = self.key("watch", job_id), self.key("done", job_id)

        def enter() -> None:
            self.r.incr(watch)
            self.r.expire(watch, int(timeout or 3600) + 60)

        self._call("wait", enter)
        try:
            while True:
                job = self.get_result(job_id)
                if job is not None:
                    return job
                left = 5.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return None
                block = max(0.01, min(left, 5.0))
                self._call("wait", lambda b=block: self.r.blpop([done], timeout=b))  # type: ignore[misc]
        finally:
            try:
                self.r.decr(watch)
            except Exception:  # the counter expires by itself
                pass
