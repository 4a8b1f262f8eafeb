"""The Lua scripts: every state change of a job is one of them.

Each script runs atomically on the server, reads the server's clock
(``TIME``, plus a test-only offset), and mirrors one shared step of
:mod:`nuvom_support.backend_base` (the notes in the history are the same
text).  Every key a script touches starts with the namespace's hash tag
(``{nuvom}``), so on Redis Cluster they all live in one slot and the
scripts are allowed; ``KEYS[1]`` (the token counter) routes the call.

Arguments common to every script: ``ARGV[1]`` the key prefix (``{ns}``),
``ARGV[2]`` the clock offset in seconds, ``ARGV[3]`` ``<ttl>:<request id>``
or ``''``.  A script given a request id stores its reply (for an exchange:
the claimed ids, not the jobs) for ``ttl`` seconds under
``{ns}:reply:<id>`` and returns it when the same request comes again: a call
resent after a lost connection is applied once.
"""

from __future__ import annotations

#: The job hash fields a script returns for a job, in the order
#: :func:`nuvom_backend_redis.codec.decode` reads them.
FIELDS = ("id", "data", "state", "attempts", "eta", "updated", "started", "finished", "token", "lease",
          "worker", "result", "progress", "reason", "cancel", "lexp", "maxr", "history", "errors")

PRELUDE = r"""
local P = ARGV[1]
local OFFSET = tonumber(ARGV[2])
local RK, TTL = nil, 0
if ARGV[3] ~= '' then
  local ttl, request = string.match(ARGV[3], '^(%d+):(.+)$')
  RK, TTL = P .. ':reply:' .. request, tonumber(ttl)
end
-- the stored reply of this request when it is a resend, else nil
local function cached()
  if not RK then return nil end
  local stored = redis.call('GET', RK)
  if stored then return cjson.decode(stored) end
  return nil
end
local function remember(r)
  if RK then redis.call('SET', RK, cjson.encode(r), 'EX', TTL) end
end
local function reply(r)
  remember(r)
  return r
end
local FIELDS = {'id','data','state','attempts','eta','updated','started','finished','token','lease',
                'worker','result','progress','reason','cancel','lexp','maxr','history','errors'}
local function fmt(x) return string.format('%.6f', x) end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 + OFFSET
end
local function jkey(id) return P .. ':job:' .. id end
local function fields(key) return redis.call('HMGET', key, unpack(FIELDS)) end
local function count(queue, from, to)
  if from then redis.call('HINCRBY', P .. ':counts', queue .. '|' .. from, -1) end
  if to then redis.call('HINCRBY', P .. ':counts', queue .. '|' .. to, 1) end
end
local function setopt(key, field, value)
  if value == nil or value == false or value == '' then redis.call('HDEL', key, field)
  else redis.call('HSET', key, field, value) end
end
-- move to `state` and append the transition to the history (text splicing, no parsing)
local function record(key, state, at, note)
  local entry = '{"state":"' .. state .. '","at":' .. at .. ',"note":' .. (note and cjson.encode(note) or 'null') .. '}'
  local h = redis.call('HGET', key, 'history')
  if not h or h == '[]' or h == '' then h = '[' .. entry .. ']' else h = string.sub(h, 1, -2) .. ',' .. entry .. ']' end
  redis.call('HSET', key, 'history', h, 'state', state, 'updated', at)
end
local function wake() redis.call('XADD', P .. ':wake', 'MAXLEN', '~', 64, '*', 'w', '1') end
local function wake_schedules() redis.call('XADD', P .. ':wake', 'MAXLEN', '~', 64, '*', 's', '1') end
-- ready_at = eta or created_at; the member orders equal priorities by ready_at, then id
local function make_ready(key, id, queue)
  local h = redis.call('HMGET', key, 'eta', 'created', 'prio')
  local ready_at = tonumber(h[1] or h[2]) or 0
  local member = string.format('%020.6f', math.max(ready_at, 0)) .. ':' .. id
  redis.call('HSET', key, 'rm', member)
  redis.call('ZADD', P .. ':ready:' .. queue, -tonumber(h[3] or 0), member)
  redis.call('ZADD', P .. ':readyat', ready_at, id)
end
local function unready(key, id, queue)
  local member = redis.call('HGET', key, 'rm')
  if member then redis.call('ZREM', P .. ':ready:' .. queue, member) end
  redis.call('ZREM', P .. ':readyat', id)
  redis.call('ZREM', P .. ':delayed:' .. queue, id)
end
local function clear_lease(key, id)
  redis.call('HDEL', key, 'token', 'lease', 'worker')
  redis.call('ZREM', P .. ':leases', id)
end
-- a job reached a terminal state: index it, free its unique key, wake result waiters
local function terminal(key, id, at)
  redis.call('HSET', key, 'finished', at)
  redis.call('ZADD', P .. ':finished', tonumber(at), id)
  local uniq = redis.call('HGET', key, 'uniq')
  if uniq and redis.call('HGET', P .. ':unique', uniq) == id then redis.call('HDEL', P .. ':unique', uniq) end
  local waiting = tonumber(redis.call('GET', P .. ':watch:' .. id) or '0')
  if waiting > 0 then
    local done = P .. ':done:' .. id
    for _ = 1, waiting do redis.call('RPUSH', done, '1') end
    redis.call('EXPIRE', done, 60)
  end
end
-- queued, or scheduled when its eta is still ahead of `now`
local function requeue(key, id, queue, state, at, note, now)
  local eta = tonumber(redis.call('HGET', key, 'eta') or '')
  if state == 'scheduled' and eta and eta > now then
    redis.call('ZADD', P .. ':delayed:' .. queue, eta, id)
  else
    make_ready(key, id, queue)
  end
  record(key, state, at, note)
end
-- sweep_update: leases that expired before `now`, at most `max` of them.  A job this
-- would make dead is left for a sweep (`deadly`), which reports it: {before, after} in `dead`
local function recover(now, max, deadly)
  local at = fmt(now)
  local moved, woke, dead = 0, false, {}
  local ids = redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', '(' .. fmt(now), 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    local key = jkey(id)
    local h = redis.call('HMGET', key, 'state', 'lease', 'worker', 'queue', 'attempts', 'lexp', 'maxle')
    local state, lease = h[1], tonumber(h[2] or '')
    if state ~= 'claimed' and state ~= 'running' then
      redis.call('ZREM', P .. ':leases', id)
    elseif lease and lease >= now then
      redis.call('ZADD', P .. ':leases', lease, id)
    elseif state == 'running' and not deadly and tonumber(h[6] or 0) + 1 > tonumber(h[7] or 3) then
      -- its death is the sweep's to report
    else
      local worker, queue = h[3] or 'None', h[4]
      local before = nil
      if state == 'running' then before = fields(key) end
      clear_lease(key, id)
      moved = moved + 1
      if state == 'claimed' then
        make_ready(key, id, queue)
        record(key, 'queued', at, 'claim expired unstarted (worker ' .. worker .. '); requeued')
        count(queue, state, 'queued')
        woke = true
      else
        redis.call('HSET', key, 'attempts', math.max(0, tonumber(h[5] or 0) - 1))
        local lexp = redis.call('HINCRBY', key, 'lexp', 1)
        local budget = tonumber(h[7] or 3)
        if lexp > budget then
          local reason = string.format('lease expired %d times while running (budget %d; last worker %s): '
            .. 'the task probably kills or hangs its worker', lexp, budget, worker)
          redis.call('HSET', key, 'reason', reason)
          record(key, 'dead', at, reason)
          terminal(key, id, at)
          count(queue, state, 'dead')
          dead[#dead + 1] = {before, fields(key)}
        else
          make_ready(key, id, queue)
          record(key, 'queued', at, string.format('lease expired while running (worker %s); redelivered, '
            .. 'retries not used (%d of %d lease expiries)', worker, lexp, budget))
          count(queue, state, 'queued')
          woke = true
        end
      end
    end
  end
  if woke then wake() end
  return moved, dead
end
-- claim_update (+ start_update for the first `start_now` never redelivered after a lease expiry): best first across `queues`
local function claim(queues, limit, lease_secs, worker, start_now, now)
  local at = fmt(now)
  local candidates = {}
  for _, queue in ipairs(queues) do
    local delayed = P .. ':delayed:' .. queue
    local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', fmt(now), 'LIMIT', 0, 1000)
    for _, id in ipairs(due) do
      redis.call('ZREM', delayed, id)
      make_ready(jkey(id), id, queue)
    end
    local top = redis.call('ZRANGE', P .. ':ready:' .. queue, 0, limit - 1, 'WITHSCORES')
    for i = 1, #top, 2 do
      candidates[#candidates + 1] = {tonumber(top[i + 1]), top[i], queue}
    end
  end
  table.sort(candidates, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local n = math.min(limit, #candidates)
  local out = {}
  if n > 0 then
    local first = redis.call('INCRBY', P .. ':token', n) - n + 1
    local lease = fmt(now + lease_secs)
    for i = 1, n do
      local member, queue = candidates[i][2], candidates[i][3]
      local id = string.match(member, ':([^:]+)$')
      local key = jkey(id)
      redis.call('ZREM', P .. ':ready:' .. queue, member)
      redis.call('ZREM', P .. ':readyat', id)
      local state = redis.call('HGET', key, 'state')
      if state == 'queued' or state == 'scheduled' then
        redis.call('HSET', key, 'token', string.format('%d', first + i - 1), 'lease', lease, 'worker', worker)
        redis.call('ZADD', P .. ':leases', lease, id)
        local to = 'claimed'
        -- a job whose lease expired while it ran is only claimed (starts_at_claim)
        if i <= start_now and tonumber(redis.call('HGET', key, 'lexp') or '0') == 0 then
          to = 'running'
          local attempts = redis.call('HINCRBY', key, 'attempts', 1)
          redis.call('HSET', key, 'started', at)
          record(key, 'running', at, 'attempt ' .. attempts .. ' by ' .. worker)
        else
          record(key, 'claimed', at, 'claimed by ' .. worker)
        end
        count(queue, state, to)
        out[#out + 1] = fields(key)
      end
    end
  end
  local due_in = ''
  for _, queue in ipairs(queues) do
    local next = redis.call('ZRANGE', P .. ':delayed:' .. queue, 0, 0, 'WITHSCORES')
    if next[2] then
      local left = tonumber(next[2]) - now
      if due_in == '' or left < tonumber(due_in) then due_in = fmt(left) end
    end
  end
  return out, due_in
end
-- store `n` jobs whose enqueue values (17 each) start at ARGV[first]; an id already
-- stored, or a unique key a live job holds, adds nothing.  Returns the per-job replies
-- ({'new', state, at} or the stored job's fields) and whether one became claimable
local function put_jobs(first, n, now)
  local at = fmt(now)
  local out, woke = {}, false
  for j = 0, n - 1 do
    local b = first + j * 17
    local id, queue, prio, created, eta, uniq = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
    local key = jkey(id)
    local holder = nil
    if redis.call('EXISTS', key) == 1 then
      holder = id
    elseif uniq ~= '' then
      local other = redis.call('HGET', P .. ':unique', uniq)
      if other then
        local st = redis.call('HGET', jkey(other), 'state')
        if st == 'queued' or st == 'scheduled' or st == 'claimed' or st == 'running' then holder = other end
      end
    end
    if holder then
      out[#out + 1] = fields(jkey(holder))
    else
      redis.call('HSET', key, 'id', id, 'queue', queue, 'prio', prio, 'created', created, 'data', ARGV[b + 6],
        'task', ARGV[b + 7], 'store', ARGV[b + 8], 'maxle', ARGV[b + 9], 'maxr', ARGV[b + 10],
        'attempts', ARGV[b + 11], 'lexp', ARGV[b + 12], 'history', ARGV[b + 13], 'errors', ARGV[b + 14],
        'cancel', '0')
      setopt(key, 'eta', eta)
      setopt(key, 'result', ARGV[b + 15])
      setopt(key, 'progress', ARGV[b + 16])
      local state = 'queued'
      if eta ~= '' and tonumber(eta) > now then
        state = 'scheduled'
        redis.call('ZADD', P .. ':delayed:' .. queue, eta, id)
        record(key, state, at, 'enqueued with eta')
      else
        make_ready(key, id, queue)
        record(key, state, at, 'enqueued')
      end
      if uniq ~= '' then
        redis.call('HSET', key, 'uniq', uniq)
        redis.call('HSET', P .. ':unique', uniq, id)
      end
      redis.call('ZADD', P .. ':created', created, id)
      redis.call('SADD', P .. ':queues', queue)
      count(queue, nil, state)
      woke = true
      out[#out + 1] = {'new', state, at}
    end
  end
  return out, woke
end
"""

#: ARGV: n, then per job: id queue prio created eta uniq data task store maxle maxr attempts lexp
#: history errors result progress.  Reply per job: {'new', state, at} or the stored job's fields.
ENQUEUE = PRELUDE + r"""
local out, woke = put_jobs(5, tonumber(ARGV[4]), clock())
if woke then wake() end
return out
"""

#: ARGV: ncompletions, per completion: id token kind result error delay reason note (optional
#: strings are '' for None, else '=' .. value); nstarts, per start: id token; then worker
#: lease_secs limit start_now nqueues queues...
#: Reply: {accepted flags, started ids, claimed jobs, due_in, server time}.
EXCHANGE = PRELUDE + r"""
local again = cached()
if again then
  -- the stored reply names the claimed jobs; send them as they are now
  for k, id in ipairs(again[3]) do again[3][k] = fields(jkey(id)) end
  return again
end
local function opt(s) if s == '' then return nil end return string.sub(s, 2) end
local now = clock()
local at = fmt(now)
local i = 4
local nc = tonumber(ARGV[i]); i = i + 1
local accepted, woke = {}, false
for _ = 1, nc do
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local result, err, delay, reason, note = opt(ARGV[i + 3]), opt(ARGV[i + 4]), opt(ARGV[i + 5]), opt(ARGV[i + 6]), opt(ARGV[i + 7])
  i = i + 8
  local key = jkey(id)
  local h = redis.call('HMGET', key, 'state', 'token', 'queue', 'store', 'errors')
  local state = h[1]
  if (state == 'claimed' or state == 'running') and h[2] == token then
    local queue = h[3]
    if err then
      local errors = h[5]
      if not errors or errors == '[]' or errors == '' then errors = '[' .. err .. ']'
      else errors = string.sub(errors, 1, -2) .. ',' .. err .. ']' end
      redis.call('HSET', key, 'errors', errors)
    end
    clear_lease(key, id)
    redis.call('HSET', key, 'cancel', '0')
    local to
    if kind == 'retry' then
      local eta = nil
      if delay then eta = now + math.max(0, tonumber(delay)) end
      setopt(key, 'eta', eta and fmt(eta))
      if eta and eta > now then
        to = 'scheduled'
        redis.call('ZADD', P .. ':delayed:' .. queue, fmt(eta), id)
        record(key, to, at, note or 'retry scheduled')
      else
        to = 'queued'
        make_ready(key, id, queue)
        record(key, to, at, note or 'retry')
        woke = true
      end
    else
      if kind == 'succeeded' then
        to = 'succeeded'
        if h[4] == '1' then setopt(key, 'result', result) else redis.call('HDEL', key, 'result') end
        record(key, to, at, note)
      elseif kind == 'failed' then
        to = 'failed'
        record(key, to, at, note)
      elseif kind == 'dead' then
        to = 'dead'
        setopt(key, 'reason', reason)
        record(key, to, at, reason)
      else
        to = 'cancelled'
        reason = reason or 'cancelled'
        redis.call('HSET', key, 'reason', reason)
        record(key, to, at, reason)
      end
      terminal(key, id, at)
    end
    count(queue, state, to)
    accepted[#accepted + 1] = 1
  else
    accepted[#accepted + 1] = 0
  end
end
local ns = tonumber(ARGV[i]); i = i + 1
local started = {}
for _ = 1, ns do
  local id, token = ARGV[i], ARGV[i + 1]
  i = i + 2
  local key = jkey(id)
  local h = redis.call('HMGET', key, 'state', 'token', 'worker', 'queue')
  if h[1] == 'claimed' and h[2] == token then
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'started', at)
    record(key, 'running', at, 'attempt ' .. attempts .. ' by ' .. (h[3] or 'None'))
    count(h[4], 'claimed', 'running')
    started[#started + 1] = id
  end
end
if woke then wake() end
local worker, lease_secs, limit, start_now = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
local nq = tonumber(ARGV[i + 4])
local queues = {}
for q = 1, nq do queues[q] = ARGV[i + 4 + q] end
local claimed, due_in = {}, ''
if limit > 0 and nq > 0 then
  recover(now, 20, false)
  claimed, due_in = claim(queues, limit, lease_secs, worker, start_now, now)
end
local claimed_ids = {}
for k, f in ipairs(claimed) do claimed_ids[k] = f[1] end
remember({accepted, started, claimed_ids, due_in, at})  -- small: ids, not the jobs
return {accepted, started, claimed, due_in, at}
"""

#: ARGV: worker json ('' for none), worker id, lease_secs, n, then id token pairs.
#: Reply: {lost ids, cancel-requested ids}.
HEARTBEAT = PRELUDE + r"""
local again = cached()
if again then return again end
local now = clock()
if ARGV[4] ~= '' then redis.call('HSET', P .. ':workers', ARGV[5], ARGV[4]) end
local lease_secs = tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local lease = fmt(now + lease_secs)
local lost, cancel = {}, {}
for j = 0, n - 1 do
  local id, token = ARGV[8 + 2 * j], ARGV[9 + 2 * j]
  local key = jkey(id)
  local h = redis.call('HMGET', key, 'state', 'token', 'cancel')
  if (h[1] == 'claimed' or h[1] == 'running') and h[2] == token then
    if lease_secs > 0 then
      redis.call('HSET', key, 'lease', lease)
      redis.call('ZADD', P .. ':leases', lease, id)
    end
    if h[1] == 'running' and h[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return reply({lost, cancel})
"""

#: ARGV: id token.  Reply: 1 if released.
RELEASE = PRELUDE + r"""
local again = cached()
if again then return again end
local now = clock()
local id, token = ARGV[4], ARGV[5]
local key = jkey(id)
local h = redis.call('HMGET', key, 'state', 'token', 'queue')
if h[1] ~= 'claimed' or h[2] ~= token then return reply(0) end
clear_lease(key, id)
make_ready(key, id, h[3])
record(key, 'queued', fmt(now), 'released unstarted')
count(h[3], 'claimed', 'queued')
wake()
return reply(1)
"""

#: ARGV: max.  Reply: {jobs moved, {{before fields, after fields} of each job made dead}}.
SWEEP = PRELUDE + r"""
local again = cached()
if again then return again end
local moved, dead = recover(clock(), tonumber(ARGV[4]), true)
return reply({moved, dead})
"""

#: ARGV: id reason.  Reply: the job's fields after the change, or nil.
CANCEL = PRELUDE + r"""
local again = cached()
if again then return again end
local now = clock()
local id, reason = ARGV[4], ARGV[5]
local key = jkey(id)
local h = redis.call('HMGET', key, 'state', 'queue')
local state, queue = h[1], h[2]
if not state then return reply(false) end
local at = fmt(now)
if state == 'queued' or state == 'scheduled' or state == 'claimed' then
  unready(key, id, queue)
  clear_lease(key, id)
  redis.call('HSET', key, 'reason', reason)
  record(key, 'cancelled', at, reason)
  terminal(key, id, at)
  count(queue, state, 'cancelled')
elseif state == 'running' then
  redis.call('HSET', key, 'cancel', '1', 'updated', at)
end
return reply(fields(key))
"""

#: ARGV: id.  Reply: {'ok', fields} | {'no'} | {'unique', holder id}.
RETRY = PRELUDE + r"""
local again = cached()
if again then return again end
local now = clock()
local id = ARGV[4]
local key = jkey(id)
local h = redis.call('HMGET', key, 'state', 'queue', 'maxr', 'attempts', 'uniq')
local state, queue = h[1], h[2]
if state ~= 'failed' and state ~= 'dead' and state ~= 'cancelled' then return reply({'no'}) end
if h[5] then
  local other = redis.call('HGET', P .. ':unique', h[5])
  if other and other ~= id then
    local st = redis.call('HGET', jkey(other), 'state')
    if st == 'queued' or st == 'scheduled' or st == 'claimed' or st == 'running' then
      return reply({'unique', other})
    end
  end
  redis.call('HSET', P .. ':unique', h[5], id)
end
local at = fmt(now)
redis.call('HSET', key, 'maxr', math.max(tonumber(h[3] or 0), tonumber(h[4] or 0)), 'cancel', '0', 'lexp', '0')
redis.call('HDEL', key, 'eta', 'reason', 'finished', 'result')
redis.call('ZREM', P .. ':finished', id)
make_ready(key, id, queue)
record(key, 'queued', at, 'retried by operator')
count(queue, state, 'queued')
wake()
return reply({'ok', fields(key)})
"""

#: ARGV: id token progress-json.  Reply: 1 if stored.
PROGRESS = PRELUDE + r"""
local key = jkey(ARGV[4])
local h = redis.call('HMGET', key, 'state', 'token')
if h[1] ~= 'running' or h[2] ~= ARGV[5] then return 0 end
redis.call('HSET', key, 'progress', ARGV[6], 'updated', fmt(clock()))
return 1
"""

#: ARGV: older_than ('' for any) batch offset states....  Reply: {deleted, scanned} (one batch).
PURGE = PRELUDE + r"""
local older = ARGV[4]
local batch = tonumber(ARGV[5])
local wanted = {}
for j = 7, #ARGV do wanted[ARGV[j]] = true end
local top = '+inf'
if older ~= '' then top = '(' .. older end
local ids = redis.call('ZRANGEBYSCORE', P .. ':finished', '-inf', top, 'LIMIT', tonumber(ARGV[6]), batch)
local deleted = 0
for _, id in ipairs(ids) do
  local key = jkey(id)
  local h = redis.call('HMGET', key, 'state', 'queue')
  if not h[1] then
    redis.call('ZREM', P .. ':finished', id)
    redis.call('ZREM', P .. ':created', id)
  elseif wanted[h[1]] then
    redis.call('DEL', key)
    redis.call('ZREM', P .. ':finished', id)
    redis.call('ZREM', P .. ':created', id)
    count(h[2], h[1], nil)
    deleted = deleted + 1
  end
end
return {deleted, #ids}
"""

#: ARGV: state queue prio created uniq store maxle task then the FIELDS values ('' for None).
#: Stores a finished job as it is (the result role's ``save``).
SAVE = PRELUDE + r"""
local state, queue = ARGV[4], ARGV[5]
local values = {}
for j = 1, #FIELDS do values[j] = ARGV[11 + j] end
local id = values[1]
local key = jkey(id)
local old = redis.call('HMGET', key, 'state', 'queue')
if old[1] then
  unready(key, id, old[2])
  clear_lease(key, id)
  count(old[2], old[1], nil)
  local uniq = redis.call('HGET', key, 'uniq')
  if uniq and redis.call('HGET', P .. ':unique', uniq) == id then redis.call('HDEL', P .. ':unique', uniq) end
  redis.call('DEL', key)
end
redis.call('HSET', key, 'queue', queue, 'prio', ARGV[6], 'created', ARGV[7], 'store', ARGV[9], 'maxle', ARGV[10],
  'task', ARGV[11])
for j = 1, #FIELDS do setopt(key, FIELDS[j], values[j]) end
redis.call('ZADD', P .. ':created', ARGV[7], id)
redis.call('SADD', P .. ':queues', queue)
if state == 'succeeded' or state == 'failed' or state == 'cancelled' or state == 'dead' then
  local finished = values[8]
  if not finished or finished == '' then finished = fmt(clock()) end
  terminal(key, id, finished)
elseif state == 'queued' or state == 'scheduled' then
  make_ready(key, id, queue)
  wake()
end
if ARGV[8] ~= '' then
  redis.call('HSET', key, 'uniq', ARGV[8])
  if state == 'queued' or state == 'scheduled' or state == 'claimed' or state == 'running' then
    redis.call('HSET', P .. ':unique', ARGV[8], id)
  end
end
count(queue, nil, state)
return 1
"""

#: Reply: the server's clock (with the offset) as text.
CLOCK = PRELUDE + r"""
return fmt(clock())
"""
