"""The file backend: one directory, many processes, no server.

The rules that make it safe (``docs/backend-file.md`` explains them):

1. A new job is written to ``tmp/``, made durable, and published with one
   ``os.replace`` into ``ready/<queue>/`` (or ``sched/<queue>/``); a batch
   (``enqueue_many``, or the finishes of one ``exchange``) shares one data
   sync (and an enqueue one sync per directory): the group commit.
2. A claim is one rename from ``ready/`` into ``run/``: only one process's
   rename succeeds, a loser gets ``FileNotFoundError`` and moves on to the
   next name.  The winner then rewrites the file as running.
3. Every other change happens while holding ``locks/<id>.lock`` (an
   ``O_EXCL`` file): the job moves into ``run/`` (one rename), is rewritten
   there (tmp + replace), then renamed to the directory its new state belongs
   in.  A crash at any point leaves exactly one file whose *content* is
   authoritative; ``sweep`` moves a file stranded in ``run/`` to where its
   content says it belongs.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nuvom_backend_file.admin import AdminMixin
from nuvom_backend_file.ids import IdMarkers
from nuvom_backend_file.layout import (
    Layout,
    id_from_name,
    ms_from_name,
    ready_name,
    sched_prefix,
)
from nuvom_backend_file.locks import LockTable
from nuvom_backend_file.namecache import NameCache
from nuvom_backend_file.queries import QueriesMixin
from nuvom_backend_file.records import (
    RENAME_OPEN,
    JobRecord,
    encode,
    has_syncfs,
    publish_file,
    quarantine,
    read_record,
    retrying,
    stage_file,
    stage_open,
    sync_data,
    sync_dirs,
    write_file,
)
from nuvom_backend_file.schedules import FileSchedules
from nuvom_backend_file.unique import UniqueKeys
from nuvom_kernel.contracts import Completion, Exchanged
from nuvom_kernel.errors import CorruptJobError, InvalidIdError, NuvomError
from nuvom_kernel.models import LEASED_STATES, Job, JobState, Outcome, now, validate_id
from nuvom_support.backend_base import (
    QueueBackendBase,
    can_start,
    claim_update,
    enqueue_update,
    finish_update,
    holds_lease,
    is_claimable,
    release_update,
    start_update,
)

try:  # the cross-process doorbell; without it, polling is the wake-up
    from nuvom_support.doorbell import UdpDoorbell
except ImportError:  # pragma: no cover - older kernels
    UdpDoorbell = None  # type: ignore[assignment,misc]

_CLAIM_ROUNDS = 4
_TMP_MAX_AGE_SECS = 3600.0
_HINTS = 4096
_FSYNC_THREADS = 8


class FileBackend(FileSchedules, AdminMixin, QueriesMixin, QueueBackendBase):
    """Queue and result backend in a directory (see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_record_bytes: int = 5 * 1024 * 1024,
        fsync: bool = True,
        fsync_claims: bool = False,
        lock_stale_secs: float = 30.0,
        lock_timeout_secs: float = 60.0,
        doorbell: bool = True,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.layout.create()
        self.limit = max_record_bytes
        self.fsync = fsync
        self.fsync_claims = fsync_claims
        self.locks = LockTable(self.layout.locks, stale_secs=lock_stale_secs, timeout_secs=lock_timeout_secs)
        self.ready = NameCache(self.layout.ready, _is_ready_name)
        self.sched = NameCache(self.layout.sched, _is_sched_name)
        self.unique = UniqueKeys(self)
        self.ids = IdMarkers(self.layout.ids, lock_stale_secs)
        self.quarantined = 0
        self.closed = False
        self._udp = UdpDoorbell(self.layout.doorbell) if doorbell and UdpDoorbell is not None else None
        self._listening: Callable[[], None] | None = None
        self._hints: OrderedDict[str, str | Path] = OrderedDict()
        self._run_prefix = os.path.join(self.layout.run, "")
        self._hint_lock = threading.Lock()
        self._stranded: dict[str, tuple[float, int]] = {}
        self._fsync_pool: ThreadPoolExecutor | None = None
        self._init_queries()

    # -- plumbing ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise NuvomError(f"the file backend at {self.root} is closed; create a new one with the factory")

    def _read(self, path: str | Path) -> JobRecord | None:
        """The record at ``path``; None if it is gone or was corrupt (then quarantined).

        A leased job's lease expiry is the later of its record's and its
        ``run/`` file's mtime: :meth:`renew` moves the mtime forward instead
        of rewriting the record, so a renewal allocates nothing and works on
        a full disk.  Any other write leaves the mtime at the write's time,
        which never extends a lease past that moment."""
        try:
            record = read_record(path, self.limit)
        except FileNotFoundError:
            return None
        except CorruptJobError as exc:
            self._quarantine(Path(path), str(exc))
            return None
        job = record.job
        if job.state in LEASED_STATES and str(path).startswith(self._run_prefix):
            try:
                renewed = os.stat(path).st_mtime
            except OSError:
                return record
            if job.lease_expires_at is None or renewed > job.lease_expires_at:
                job.lease_expires_at = renewed
        return record

    def _run_file(self, job_id: str) -> str:
        """``run/<id>.job`` as a string (the hot path avoids building Path objects)."""
        return f"{self._run_prefix}{job_id}.job"

    def _quarantine(self, path: Path, reason: str) -> None:
        try:
            moved = quarantine(path, self.layout.quarantine, reason)
        except OSError:  # cannot move it now (e.g. held open on Windows): found again later
            return
        if moved is not None:
            self.quarantined += 1
            self._dead_letter_undecodable(path, moved, reason)

    def _dead_letter_undecodable(self, path: Path, moved: Path, reason: str) -> None:
        """Leave a ``dead`` record for a job whose file could not be decoded, so
        ``get``/``nuvom inspect job`` say what happened instead of "not found"."""
        if path.parent in (self.layout.run, self.layout.done):
            job_id: str | None = path.name[: -len(".job")] if path.name.endswith(".job") else None
        else:
            job_id = id_from_name(path.name)
        if job_id is None:
            return
        try:
            validate_id(job_id)
        except InvalidIdError:
            return
        done = self.layout.done_path(job_id)
        if done.exists():
            return
        at = now()
        dead = Job(id=job_id, task="(undecodable)", created_at=at, finished_at=at)
        dead.reason = f"the stored job could not be decoded ({reason}); the file was quarantined as {moved.name}"
        dead.record(JobState.DEAD, at, dead.reason)
        try:
            self._write(done, JobRecord(fence=0, job=dead), fsync=True)
        except OSError:
            return

    def _write(self, path: str | Path, record: JobRecord, *, fsync: bool) -> None:
        write_file(self.layout.tmp, path, encode(record, self.limit), fsync=fsync)

    def _remember(self, job_id: str, path: str | Path) -> None:
        with self._hint_lock:
            self._hints[job_id] = path
            self._hints.move_to_end(job_id)
            while len(self._hints) > _HINTS:
                self._hints.popitem(last=False)

    def _placed(self, job: Job, path: Path) -> bool:
        """Bookkeeping after ``job`` landed at ``path``; True if it may be claimable."""
        self._remember(job.id, path)
        if path.parent.parent == self.layout.ready:
            self.ready.add(job.queue, path.name)
            return True
        if path.parent.parent == self.layout.sched:
            self.sched.add(job.queue, path.name)
            return True
        return False

    def _commit(self, current: Path, record: JobRecord, *, fsync: bool) -> bool:
        """Rewrite a job and move it home.  Caller holds the job's lock.

        Returns True when the job became claimable (ring the doorbell).
        """
        run = self.layout.run_path(record.job.id)
        if current != run:
            retrying(os.replace, current, run)
        self._write(run, record, fsync=fsync)
        home = self.layout.home(record.job)
        if home != run:
            retrying(os.replace, run, home)
        if fsync:  # the rewrite is durable; make its name durable too
            sync_dirs([run.parent, home.parent] if home != run else [run.parent])
        return self._placed(record.job, home)

    def _hint(self, job_id: str) -> Path | None:
        with self._hint_lock:
            hint = self._hints.get(job_id)
        return None if hint is None else Path(hint)

    def ring(self) -> None:
        if self._udp is not None:
            self._udp.ring()
        else:
            self.ready.ring()
            self.sched.ring()
            self.doorbell.ring()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._check_open()
        self._listen()
        if self._udp is not None:
            return self._udp.subscribe(callback)
        return self.doorbell.subscribe(callback)

    def _listen(self) -> None:
        """A claiming process learns of other processes' enqueues from the doorbell."""
        if self._listening is None and self._udp is not None:
            def wake() -> None:
                self.ready.ring()
                self.sched.ring()

            self._listening = self._udp.subscribe(wake)

    # -- enqueue -----------------------------------------------------------------

    def enqueue(self, job: Job) -> Job:
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Sequence[Job]) -> list[Job]:
        """Publish ``jobs`` in order, with one group commit.

        Every file of the batch is written to ``tmp/`` first and renamed into
        place in order; the call returns once data and names are durable (with
        fsync on), at the cost of one flush for the whole batch where the
        platform allows it: on Linux one ``syncfs`` after the renames; a single
        file on POSIX is fsynced after its rename (still open), then its
        directory; elsewhere the files are fsynced before the renames (from a
        pool) and the directories after.  docs/backend-file.md has the crash
        semantics.
        """
        self._check_open()
        at = now()
        jobs = list(jobs)
        for job in jobs:
            enqueue_update(job, at)
        # one job per id: an id already stored answers with the stored job
        known: dict[int, Job] = {}
        for job in jobs:
            if not self.ids.take(job.id):
                existing = self.ids.existing(job.id, self.get)
                if existing is not None:
                    known[id(job)] = existing
        plain = [job for job in jobs if job.unique_key is None and id(job) not in known]
        # how this batch becomes durable (see the docstring)
        open_one = self.fsync and len(plain) == 1 and RENAME_OPEN
        sync_after = self.fsync and len(plain) > 1 and has_syncfs()
        sync_before = self.fsync and not open_one and not sync_after
        staged: dict[int, str] = {}
        held_fd: int | None = None
        published: list[str] = []
        folders: dict[str, None] = {}  # the directories that received files, in order
        out: list[Job] = []
        added = False
        try:
            for job in plain:
                data = encode(JobRecord(job=job), self.limit)
                if open_one:
                    staged[id(job)], held_fd = stage_open(self.layout.tmp, data)
                else:
                    staged[id(job)] = stage_file(self.layout.tmp, data, fsync=sync_before and len(plain) == 1)
            if sync_before and len(plain) > 1:
                sync_data(self.root, list(staged.values()), self._fsync_executor(len(staged)))
            for job in jobs:
                if id(job) in known:
                    out.append(known[id(job)])
                    continue
                if job.unique_key is not None:
                    stored = self.unique.enqueue(job, self._publish_new)
                    added = added or stored is job
                    out.append(stored)
                    continue
                if job.state == JobState.QUEUED:  # the common case, without Path objects
                    folder, name = self.layout.ready_dir(job.queue), ready_name(job)
                    dest = os.path.join(folder, name)
                    publish_file(staged.pop(id(job)), dest)
                    self._remember(job.id, dest)
                    self.ready.add(job.queue, name)
                else:
                    home = self.layout.home(job)
                    dest, folder = str(home), str(home.parent)
                    publish_file(staged.pop(id(job)), home)
                    self._placed(job, home)
                published.append(dest)
                folders[folder] = None
                added = True
                out.append(job)
            if held_fd is not None:
                fd, held_fd = held_fd, None
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if sync_after and published:
                sync_data(self.root, published)  # one syncfs: the data and the renames
            elif self.fsync and folders:
                sync_dirs(Path(folder) for folder in folders)
        finally:
            if held_fd is not None:
                os.close(held_fd)
            for tmp in staged.values():  # not published because an earlier step failed
                _unlink(tmp)
            # ids this call took but did not publish (an error, or a unique key held
            # by another job) are free again
            done_ids = {job.id for job in out}
            self.ids.forget(job.id for job in jobs if id(job) not in known and job.id not in done_ids)
            if added:
                self.ring()
        return out

    def _fsync_executor(self, files: int) -> ThreadPoolExecutor | None:
        """Threads that overlap per-file fsyncs (which release the GIL) where no
        single call syncs a batch (not Linux); None when one thread will do."""
        if files < 2 or has_syncfs():
            return None
        with self._hint_lock:
            if self._fsync_pool is None:
                self._fsync_pool = ThreadPoolExecutor(_FSYNC_THREADS, thread_name_prefix="nuvom-file-fsync")
            return self._fsync_pool

    def exchange(self, completions: Sequence[Completion], queues: Sequence[str], limit: int,
                 lease_secs: float, worker_id: str, *, starts: Mapping[str, int] | None = None,
                 start_now: int = 0) -> Exchanged:
        """Finish ``completions`` with one group commit, record ``starts``, then claim."""
        self._check_open()
        accepted = self._finish_many(completions)
        started = self.start(starts) if starts else set()
        claimed = self.claim(queues, limit, lease_secs, worker_id, start_now=start_now) if limit > 0 else []
        return Exchanged(accepted, claimed, started)

    def _publish_new(self, job: Job) -> Path:
        data = encode(JobRecord(job=job), self.limit)
        home = self.layout.home(job)
        write_file(self.layout.tmp, home, data, fsync=self.fsync)
        if self.fsync:
            sync_dirs([home.parent])
        self._placed(job, home)
        return home

    # -- claim -------------------------------------------------------------------

    def claim(self, queues: Sequence[str], limit: int, lease_secs: float, worker_id: str,
              *, start_now: int = 0) -> list[Job]:
        self._check_open()
        self._listen()
        queues = list(dict.fromkeys(validate_id(q, "queue name") for q in queues))
        at = now()
        self._promote_due(queues, at)
        claimed: list[Job] = []
        for _ in range(_CLAIM_ROUNDS):
            if len(claimed) >= limit:
                break
            batch = self.ready.take(queues, limit - len(claimed))
            if not batch:
                break
            for queue, name in batch:
                job = self._claim_one(queue, name, lease_secs, worker_id, at, len(claimed) < start_now)
                if job is not None:
                    claimed.append(job)
        self._quarantine_rejected()
        return claimed

    def _claim_one(self, queue: str, name: str, lease_secs: float, worker_id: str, at: float,
                   start: bool = False) -> Job | None:
        """Claim one job by renaming it out of ``ready/``; no lock is taken.

        Only one process's rename can succeed; until this claimer rewrites the
        file, lock holders see ``queued`` content in ``run/`` and wait for it
        (see ``admin.py``).
        """
        job_id = id_from_name(name) or ""
        run = self._run_file(job_id)
        try:
            retrying(os.replace, os.path.join(self.layout.ready, queue, name), run)
        except FileNotFoundError:
            return None  # another claimer (or a cancel) got there first
        except PermissionError:
            return None  # Windows: held open elsewhere for longer than the retries; next time
        record = self._read(run)
        if record is None:
            return None
        job = record.job
        if job.id != job_id or job.queue != queue:
            self._quarantine(Path(run), f"file ready/{queue}/{name} holds job {job.id!r} of queue {job.queue!r}")
            return None
        if not is_claimable(job, at):
            home = self.layout.home(job, at)
            retrying(os.replace, run, home)
            self._placed(job, home)
            return None
        record.fence += 1
        claim_update(job, record.fence, lease_secs, worker_id, at, start=start)
        self._write(run, record, fsync=self.fsync_claims)
        self._remember(job.id, run)
        return job

    def _promote_due(self, queues: Sequence[str], at: float) -> None:
        """Move scheduled jobs whose eta has come from ``sched/`` to ``ready/``."""
        for queue, name in self.sched.take(queues, 1000, upto=sched_prefix(at)):
            job_id = id_from_name(name) or ""
            if not self.locks.try_acquire(job_id):
                continue
            try:
                src = self.layout.sched / queue / name
                record = self._read(src)
                if record is None:
                    continue
                home = self.layout.home(record.job, at)
                if home != src:
                    retrying(os.replace, src, home)
                self._placed(record.job, home)
            except FileNotFoundError:
                continue
            finally:
                self.locks.release(job_id)
        self._quarantine_rejected()

    def _quarantine_rejected(self) -> None:
        for cache in (self.ready, self.sched):
            while cache.rejected:
                path = cache.rejected.pop()
                self._quarantine(path, f"unrecognised file name {path.name!r} in {path.parent.parent.name}/")

    # -- completion and leases ---------------------------------------------------

    def finish(self, job_id: str, token: int, outcome: Outcome) -> bool:
        self._check_open()
        return self._finish_many([Completion(job_id, token, outcome)])[0]

    def _finish_many(self, completions: Sequence[Completion]) -> list[bool]:
        """Record outcomes with one group commit per round.

        Each job is locked, read and rewritten into ``tmp/`` without fsync;
        then the data of the whole round is made durable at once (one
        ``syncfs`` on Linux), the files are renamed into ``run/`` and on to
        their new home, and the locks are released.  The renames are not
        synced: a power cut soon after can put a job back in its previous
        (running) state, and it runs again (docs/backend-file.md).  A job id given twice is finished in a later round (its
        lock is held by this call).  An error on one job does not stop the
        others; the first is raised after the rest are committed.
        """
        accepted = [False] * len(completions)
        todo = list(enumerate(completions))
        errors: list[BaseException] = []
        claimable = False
        while todo:
            seen: set[str] = set()
            this_round: list[tuple[int, Completion]] = []
            later: list[tuple[int, Completion]] = []
            for item in todo:
                (later if item[1].job_id in seen else this_round).append(item)
                seen.add(item[1].job_id)
            todo = later
            claimable = self._finish_round(this_round, accepted, errors) or claimable
        if claimable:
            self.ring()
        if errors:
            raise errors[0]
        return accepted

    def _finish_round(self, items: Sequence[tuple[int, Completion]], accepted: list[bool],
                      errors: list[BaseException]) -> bool:
        """One group commit for jobs with distinct ids; True if one became claimable."""
        locked: list[str] = []
        staged: list[tuple[int, JobRecord, str]] = []
        unpublished: set[str] = set()
        claimable = False
        inline = self.fsync and len(items) == 1  # one file: fsync it while it is open
        try:
            # locks are taken in id order, so two processes finishing overlapping
            # batches (a lease lost and the job run again) cannot wait on each other
            for index, completion in sorted(items, key=lambda item: item[1].job_id):
                try:
                    validate_id(completion.job_id)
                    self.locks.acquire(completion.job_id)
                except Exception as exc:  # the others still finish
                    errors.append(exc)
                    continue
                locked.append(completion.job_id)
                try:
                    record = self._read(self._run_file(completion.job_id))
                    if record is None or not finish_update(record.job, completion.token, completion.outcome):
                        continue
                    tmp = stage_file(self.layout.tmp, encode(record, self.limit), fsync=inline)
                except Exception as exc:  # e.g. a result over the record limit
                    errors.append(exc)
                    continue
                unpublished.add(tmp)
                staged.append((index, record, tmp))
            if self.fsync and not inline:
                sync_data(self.root, [tmp for _, _, tmp in staged], self._fsync_executor(len(staged)))
            for index, record, tmp in staged:
                unpublished.discard(tmp)
                run = self._run_file(record.job.id)
                home = self.layout.home(record.job)
                try:
                    publish_file(tmp, run)
                    if home.parent != self.layout.run:
                        retrying(os.replace, run, home)
                except Exception as exc:  # the others still finish
                    errors.append(exc)
                    continue
                claimable = self._placed(record.job, home) or claimable
                accepted[index] = True
        except Exception as exc:  # a failed sync: nothing of this round is acknowledged
            errors.append(exc)
            for index, _, _ in staged:
                accepted[index] = False
        finally:
            for tmp in unpublished:
                _unlink(tmp)
            for job_id in locked:
                self.locks.release(job_id)
        return claimable

    def start(self, leases: Mapping[str, int]) -> set[str]:
        """Record starts: a locked rewrite in ``run/`` each (no fsync: what the
        start record guards against is a killed process, not a lost disk)."""
        self._check_open()
        started: set[str] = set()
        at = now()
        for job_id, token in dict(leases).items():
            validate_id(job_id)
            with self.locks.hold(job_id):
                run = self._run_file(job_id)
                record = self._read(run)
                if record is None or not can_start(record.job, token):
                    continue
                start_update(record.job, at)
                self._write(run, record, fsync=False)
                started.add(job_id)
        return started

    def renew(self, leases: dict[str, int] | Any, lease_secs: float) -> set[str]:
        self._check_open()
        lost: set[str] = set()
        for job_id, token in dict(leases).items():
            validate_id(job_id)
            with self.locks.hold(job_id):
                run = self._run_file(job_id)
                record = self._read(run)
                if record is None or not holds_lease(record.job, token):
                    lost.add(job_id)
                    continue
                # The lease lives in the file's mtime (see _read): no new file,
                # no allocation, so renewing works on a full disk.
                expires = now() + lease_secs
                try:
                    os.utime(run, (expires, expires))
                except FileNotFoundError:
                    lost.add(job_id)
        return lost

    def release(self, job_id: str, token: int) -> bool:
        self._check_open()
        validate_id(job_id)
        with self.locks.hold(job_id):
            run = self.layout.run_path(job_id)
            record = self._read(run)
            if record is None or not can_start(record.job, token):
                return False
            release_update(record.job)
            self._commit(run, record, fsync=False)
        self.ring()
        return True

    def set_progress(self, job_id: str, token: int, progress: Any) -> bool:
        self._check_open()
        validate_id(job_id)
        with self.locks.hold(job_id):
            run = self.layout.run_path(job_id)
            record = self._read(run)
            if record is None or record.job.state != JobState.RUNNING or record.job.token != token:
                return False
            record.job.progress = progress
            record.job.updated_at = now()
            self._write(run, record, fsync=False)
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._listening is not None:
            self._listening()
            self._listening = None
        if self._udp is not None:
            self._udp.close()
        if self._fsync_pool is not None:
            self._fsync_pool.shutdown(wait=True)
            self._fsync_pool = None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _is_ready_name(name: str) -> bool:
    job_id = id_from_name(name)
    if job_id is None or len(name.partition("-")[0]) != 15:
        return False
    try:
        validate_id(job_id)
    except ValueError:
        return False
    return True


def _is_sched_name(name: str) -> bool:
    job_id = id_from_name(name)
    if job_id is None or len(name.partition("-")[0]) != 9:
        return False
    try:
        validate_id(job_id)
        ms_from_name(name)
    except ValueError:
        return False
    return True

