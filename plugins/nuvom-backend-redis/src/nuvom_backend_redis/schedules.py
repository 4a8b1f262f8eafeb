"""The schedule store role of the Redis backend.

Keys (under the namespace's hash tag, like the job keys):

``{ns}:sched:<id>``   hash: ``data`` (the schedule's definition as JSON) and
                      one field per value a fire or a state change writes:
                      ``state next last fires missed coalesced updated ver``
``{ns}:sched:due``    zset: active schedules by next fire time
``{ns}:sched:ended``  zset: done and cancelled schedules by the time they ended (purge)
``{ns}:sched:ids``    zset (score 0): every schedule id, in id order

A fire is ONE script (:data:`FIRE`): it checks that the schedule is active
and still at the expected fire time (the text of the float, written only by
this module, so comparing texts compares the exact values), inserts the
occurrence's jobs exactly as an enqueue does (an id already stored stays one
job) and advances the schedule.  Redis runs one script at a time, so any
number of schedulers fire each occurrence once.  The fire carries a request
id like every job-changing script: a call resent after a lost reply returns
the first answer instead of a second verdict.

``add_schedule(replace=True)`` is an optimistic write: it reads the schedule
and its version (``ver``, bumped by every write), merges in Python
(:func:`~nuvom_support.schedules.merge_schedule`) and writes only if the
version is unchanged, else reads again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nuvom_backend_redis.codec import enqueue_args
from nuvom_backend_redis.scripts import PRELUDE
from nuvom_kernel.models import Job, now, validate_id
from nuvom_kernel.schedules import Schedule, ScheduleState
from nuvom_support.schedules import check_schedule_id, merge_schedule, purge_states, purgeable

#: hash fields read for one schedule, in the order :func:`decode_schedule` takes them
SCHEDULE_FIELDS = ("data", "state", "next", "last", "fires", "missed", "coalesced", "updated", "ver")
#: the Schedule fields kept in hash fields of their own (never in ``data``)
_HOT = {"state", "next_fire_at", "last_fire_at", "fire_count", "missed_count", "coalesced_count", "updated_at"}

_SCHEDULE_PRELUDE = PRELUDE + r"""
local function skey(id) return P .. ':sched:' .. id end
-- keep the indexes true to the hash: due (active with a next fire time), ended (done, cancelled)
local function index_due(id)
  local h = redis.call('HMGET', skey(id), 'state', 'next', 'updated')
  if h[1] == 'active' and h[2] and h[2] ~= '' then
    redis.call('ZADD', P .. ':sched:due', h[2], id)
  else
    redis.call('ZREM', P .. ':sched:due', id)
  end
  if h[1] == 'done' or h[1] == 'cancelled' then
    redis.call('ZADD', P .. ':sched:ended', tonumber(h[3] or '0') or 0, id)
  else
    redis.call('ZREM', P .. ':sched:ended', id)
  end
end
"""

#: ARGV: id, expected version ('' = must not exist), data, state, next, last, fires, missed,
#: coalesced, updated ('' for None).  Reply: 1 if written, 0 if the version moved.
PUT = _SCHEDULE_PRELUDE + r"""
local id, expected = ARGV[4], ARGV[5]
local key = skey(id)
local ver = redis.call('HGET', key, 'ver')
if (expected == '' and ver) or (expected ~= '' and ver ~= expected) then return 0 end
redis.call('HSET', key, 'data', ARGV[6], 'state', ARGV[7], 'fires', ARGV[10], 'missed', ARGV[11],
  'coalesced', ARGV[12], 'updated', ARGV[13])
setopt(key, 'next', ARGV[8])
setopt(key, 'last', ARGV[9])
redis.call('HINCRBY', key, 'ver', 1)
redis.call('ZADD', P .. ':sched:ids', 0, id)
index_due(id)
wake_schedules()
return 1
"""

#: ARGV: id, expected next, next ('' = none: the schedule is done), fired at ('' when no job),
#: jobs fired, missed, coalesced, updated, n, then n jobs' enqueue values (17 each).
#: Reply: 1 if this call fired the occurrence, 0 if not (paused, cancelled, already advanced).
FIRE = _SCHEDULE_PRELUDE + r"""
local again = cached()
if again ~= nil then return again end
local id = ARGV[4]
local key = skey(id)
local h = redis.call('HMGET', key, 'state', 'next')
if h[1] ~= 'active' or h[2] ~= ARGV[5] then return reply(0) end
local _, woke = put_jobs(13, tonumber(ARGV[12]), clock())
redis.call('HINCRBY', key, 'fires', tonumber(ARGV[8]))
redis.call('HINCRBY', key, 'missed', tonumber(ARGV[9]))
redis.call('HINCRBY', key, 'coalesced', tonumber(ARGV[10]))
if ARGV[7] ~= '' then redis.call('HSET', key, 'last', ARGV[7]) end
if ARGV[6] == '' then
  redis.call('HDEL', key, 'next')
  redis.call('HSET', key, 'state', 'done')
else
  redis.call('HSET', key, 'next', ARGV[6])
end
redis.call('HSET', key, 'updated', ARGV[11])
redis.call('HINCRBY', key, 'ver', 1)
index_due(id)
if woke then wake() end
return reply(1)
"""

#: ARGV: id, state, updated.  Reply: the schedule's fields after the change, or nil.
SET_STATE = _SCHEDULE_PRELUDE + r"""
local id = ARGV[4]
local key = skey(id)
if redis.call('EXISTS', key) == 0 then return false end
redis.call('HSET', key, 'state', ARGV[5], 'updated', ARGV[6])
redis.call('HINCRBY', key, 'ver', 1)
index_due(id)
wake_schedules()
return redis.call('HMGET', key, 'data', 'state', 'next', 'last', 'fires', 'missed', 'coalesced', 'updated', 'ver')
"""

#: ARGV: older_than ('' for any age), wanted states joined by ',', then ids.  Deletes each
#: id still in a wanted state that ended before older_than.  Reply: how many were deleted.
PURGE_SCHEDULES = _SCHEDULE_PRELUDE + r"""
local older = ARGV[4]
local wanted = {}
for state in string.gmatch(ARGV[5], '[^,]+') do wanted[state] = true end
local deleted = 0
for j = 6, #ARGV do
  local id = ARGV[j]
  local h = redis.call('HMGET', skey(id), 'state', 'updated')
  if h[1] and wanted[h[1]] and (older == '' or (tonumber(h[2] or '0') or 0) < tonumber(older)) then
    redis.call('DEL', skey(id))
    redis.call('ZREM', P .. ':sched:ids', id)
    redis.call('ZREM', P .. ':sched:due', id)
    redis.call('ZREM', P .. ':sched:ended', id)
    deleted = deleted + 1
  end
end
return deleted
"""

SCHEDULE_SCRIPTS = ("PUT", "FIRE", "SET_STATE", "PURGE_SCHEDULES")
_PURGE_BATCH = 500


def _float(text: Any) -> float | None:
    return None if text in (None, "") else float(text)


def decode_schedule(values: Sequence[Any]) -> Schedule:
    data = json.loads(values[0])
    data.update(state=values[1], next_fire_at=_float(values[2]), last_fire_at=_float(values[3]),
                fire_count=int(values[4] or 0), missed_count=int(values[5] or 0),
                coalesced_count=int(values[6] or 0), updated_at=_float(values[7]) or now())
    return Schedule.from_dict(data)


def _ts(value: float | None) -> str:
    """A time as hash text: ``repr`` of the float (exact, and the same text for the same
    value, which the fire script compares); ``''`` for None."""
    return "" if value is None else repr(float(value))


def put_args(schedule: Schedule, expected_version: str) -> list[str]:
    cold = json.dumps({k: v for k, v in schedule.to_dict().items() if k not in _HOT}, separators=(",", ":"))
    return [schedule.id, expected_version, cold, schedule.state.value, _ts(schedule.next_fire_at),
            _ts(schedule.last_fire_at), str(schedule.fire_count), str(schedule.missed_count),
            str(schedule.coalesced_count), repr(schedule.updated_at)]


class RedisSchedules:
    """Mixed into :class:`~nuvom_backend_redis.backend.RedisBackend`."""

    key: Callable[..., str]
    _run: Callable[..., Any]
    _call: Callable[..., Any]
    r: Any

    def _read_schedule(self, schedule_id: str) -> tuple[Schedule, str] | None:
        values = self._call("read schedule", lambda: self.r.hmget(self.key("sched", schedule_id), SCHEDULE_FIELDS))
        if values[0] is None:
            return None
        return decode_schedule(values), str(values[8])

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        check_schedule_id(schedule.id)
        while True:
            found = self._read_schedule(schedule.id)
            if found is None:
                if self._run("PUT", put_args(schedule, ""), once=False):
                    return schedule.copy_()
                continue  # another client added it first: take that one (or merge into it)
            stored, version = found
            if not replace:
                return stored
            merged = merge_schedule(stored, schedule)
            if merged is None:
                return stored
            if self._run("PUT", put_args(merged, version), once=False):
                return merged

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        found = self._read_schedule(schedule_id)
        return None if found is None else found[0]

    def _read_many(self, ids: Sequence[str]) -> list[Schedule]:
        def read() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for schedule_id in ids:
                pipe.hmget(self.key("sched", schedule_id), SCHEDULE_FIELDS)
            return pipe.execute()

        rows = self._call("read schedules", read) if ids else []
        return [decode_schedule(values) for values in rows if values[0] is not None]

    def list_schedules(self) -> list[Schedule]:
        ids = self._call("list schedules", lambda: self.r.zrange(self.key("sched", "ids"), 0, -1))
        return self._read_many(sorted(ids))

    def due_schedules(self, at: float, limit: int) -> list[Schedule]:
        if limit <= 0:
            return []
        ids = self._call("due schedules", lambda: self.r.zrangebyscore(
            self.key("sched", "due"), "-inf", repr(float(at)), start=0, num=int(limit)))
        # a schedule paused between the two reads is skipped; its fire would be refused anyway
        return [s for s in self._read_many(ids) if s.state == ScheduleState.ACTIVE and s.next_fire_at is not None
                and s.next_fire_at <= at]

    def fire_schedule(self, schedule_id: str, expected_next: float, jobs: Sequence[Job],
                      next_fire_at: float | None, *, missed: int = 0, coalesced: int = 0) -> bool:
        args = [schedule_id, _ts(expected_next), _ts(next_fire_at), _ts(expected_next) if jobs else "",
                str(len(jobs)), str(int(missed)), str(int(coalesced)), repr(now()), str(len(jobs))]
        for job in jobs:
            validate_id(job.id)
            validate_id(job.queue, "queue name")
            job.token = None
            job.lease_expires_at = None
            job.worker_id = None
            args += enqueue_args(job)
        return bool(self._run("FIRE", args))

    def set_schedule_state(self, schedule_id: str, state: ScheduleState | Any) -> Schedule | None:
        values = self._run("SET_STATE", [schedule_id, ScheduleState(state).value, repr(now())], once=False)
        return decode_schedule(values) if values else None

    def purge_schedules(self, *, states: Iterable[ScheduleState] | None = None, older_than: float | None = None,
                        include_code: bool = False) -> int:
        """Delete ended schedules (:func:`~nuvom_support.schedules.purgeable`): the
        ``ended`` index names the candidates, a script per batch deletes those
        still ended (a schedule changed meanwhile is left alone)."""
        wanted = purge_states(states)
        top = "+inf" if older_than is None else f"({float(older_than)!r}"
        ids = self._call("ended schedules", lambda: self.r.zrangebyscore(self.key("sched", "ended"), "-inf", top))
        doomed = [s.id for s in self._read_many(ids) if purgeable(s, wanted, older_than, include_code)]
        older = "" if older_than is None else repr(float(older_than))
        names = ",".join(sorted(s.value for s in wanted))
        deleted = 0
        for at in range(0, len(doomed), _PURGE_BATCH):
            deleted += int(self._run("PURGE_SCHEDULES", [older, names, *doomed[at:at + _PURGE_BATCH]], once=False))
        return deleted
