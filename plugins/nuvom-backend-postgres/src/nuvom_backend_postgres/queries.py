"""The hot-path statements.  ``{s}`` stands for the quoted schema name.

Each transition is one statement whose SQL mirrors a step of
:mod:`nuvom_support.backend_base` (``claim_update``, ``start_update``,
``finish_update``/``apply_outcome``, ``sweep_update``, ``release_update``),
stamping times with the server's clock (``clock_timestamp()``, read once per
statement): a worker's clock never decides a lease or an eta.
``test_pg_protocol`` checks that the statements and the shared steps agree.
"""

from __future__ import annotations

from nuvom_backend_postgres.rows import JOB_COLUMNS, columns

#: The server's clock, once per statement.
NOW_CTE = "t AS MATERIALIZED (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)"


def _entry(state: str, note: str) -> str:
    """A one-element jsonb array: the history entry ``Transition(state, at=now, note)``."""
    return f"jsonb_build_array(jsonb_build_object('state', {state}, 'at', t.now, 'note', {note}))"


def _dead_reason(x: str) -> str:
    """``sweep_update``'s reason for a job whose lease expired too often (x: the picked row)."""
    return (f"'lease expired ' || ({x}.lease_expiries + 1) || ' times while running (budget ' || {x}.max_lease_expiries"
            f" || '; last worker ' || coalesce({x}.old_worker, 'None') || '): the task probably kills or hangs its worker'")


def _expiry_entry(x: str) -> str:
    """The history entry ``sweep_update`` appends for an expired lease (empty for other rows)."""
    return (
        f"CASE WHEN {x}.state = 'claimed' THEN "
        + _entry("'queued'", f"'claim expired unstarted (worker ' || coalesce({x}.old_worker, 'None') || '); requeued'")
        + f" WHEN {x}.state = 'running' AND NOT {x}.dies THEN "
        + _entry("'queued'", f"'lease expired while running (worker ' || coalesce({x}.old_worker, 'None') || "
                             f"'); redelivered, retries not used (' || ({x}.lease_expiries + 1) || ' of ' || "
                             f"{x}.max_lease_expiries || ' lease expiries)'")
        + " ELSE '[]'::jsonb END"
    )


_PICK_COLUMNS = ("j.id, j.state, j.priority, j.ready_at, j.lease_expiries, j.max_lease_expiries, "
                 "j.worker_id AS old_worker")

def _pick(where: str, order: str) -> str:
    """The best claimable jobs of queue ``q`` matching ``where``, walking the claim index."""
    return (f"SELECT {_PICK_COLUMNS} FROM {{s}}.jobs j "
            f"WHERE j.queue = q.name AND j.state IN ('queued','scheduled') AND (j.state = 'queued' OR j.ready_at <= t.now) "
            f"AND {where} ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF j SKIP LOCKED")


_ORDER = "j.priority DESC, j.ready_at, j.id"

#: Every claimable job of a queue, from the front of the claim index.
_FROM_FRONT = f"""
    SELECT p.* FROM unnest(%(queues)s::text[]) AS q(name) CROSS JOIN t
    CROSS JOIN LATERAL ({_pick("true", _ORDER)}) p"""

#: The same, starting at each queue's floor (priority ``fp``, then ``(ready_at, id) >= (fr, fi)``):
#: the jobs before it were claimed already, and with the xmin horizon held back
#: their dead index entries would be walked again by every claim.  Three range
#: scans per queue: higher priorities, the floor's priority from the floor on,
#: lower priorities.
_FROM_FLOOR = f"""
    SELECT p.* FROM unnest(%(queues)s::text[], %(fp)s::int4[], %(fr)s::float8[], %(fi)s::text[])
        AS q(name, fp, fr, fi) CROSS JOIN t
    CROSS JOIN LATERAL (
        SELECT * FROM ({_pick("j.priority > q.fp", _ORDER)}) hi
        UNION ALL SELECT * FROM ({_pick("j.priority = q.fp AND (j.ready_at, j.id) >= (q.fr, q.fi)", "j.ready_at, j.id")}) eq
        UNION ALL SELECT * FROM ({_pick("j.priority < q.fp", _ORDER)}) lo
    ) p"""

#: Jobs of ``queues`` whose lease expired (their worker died).
_EXPIRED = f"""
    UNION ALL
    SELECT e.* FROM (
        SELECT {_PICK_COLUMNS} FROM {{s}}.jobs j, t
        WHERE j.state IN ('claimed','running') AND j.lease_expires_at < t.now AND j.queue = ANY(%(queues)s::text[])
          AND NOT (j.state = 'running' AND j.lease_expiries + 1 > j.max_lease_expiries)
        LIMIT %(limit)s FOR UPDATE OF j SKIP LOCKED
    ) e"""


def _claim(picks: str) -> str:
    return f"""
WITH {NOW_CTE},
picked AS MATERIALIZED ({picks}
),
{_CLAIM_UPDATE}"""


def _claim_from_floor() -> str:
    """From the floor; only if that finds nothing, from the front (with expired
    leases) in the same statement: the front scan sits under a one-time filter."""
    return f"""
WITH {NOW_CTE},
fl AS MATERIALIZED ({_FROM_FLOOR}
),
picked AS MATERIALIZED (
    SELECT * FROM fl
    UNION ALL
    SELECT f.* FROM ({_FROM_FRONT}{_EXPIRED}
    ) f WHERE NOT EXISTS (SELECT 1 FROM fl)
),
{_CLAIM_UPDATE}"""


_CLAIM_UPDATE = f"""ranked AS (
    SELECT r.*, row_number() OVER (PARTITION BY r.dies ORDER BY r.priority DESC, r.ready_at, r.id) AS n
    FROM (SELECT p.*, (p.state = 'running' AND p.lease_expiries + 1 > p.max_lease_expiries) AS dies FROM picked p) r
),
x AS (
    -- go: started at claim time, unless its lease already expired while it ran (starts_at_claim)
    SELECT *, (NOT dies AND n <= %(start_now)s AND lease_expiries + (state = 'running')::int = 0) AS go
    FROM ranked WHERE dies OR n <= %(limit)s
)
UPDATE {{s}}.jobs j SET
    state = CASE WHEN x.dies THEN 'dead' WHEN x.go THEN 'running' ELSE 'claimed' END,
    token = CASE WHEN x.dies THEN NULL ELSE nextval('{{s}}.token_seq') END,
    lease_expires_at = CASE WHEN x.dies THEN NULL ELSE t.now + %(lease)s END,
    worker_id = CASE WHEN x.dies THEN NULL ELSE %(worker)s END,
    attempts = greatest(0, j.attempts - (x.state = 'running')::int) + x.go::int,
    lease_expiries = j.lease_expiries + (x.state = 'running')::int,
    started_at = CASE WHEN x.go THEN t.now ELSE j.started_at END,
    finished_at = CASE WHEN x.dies THEN t.now ELSE j.finished_at END,
    reason = CASE WHEN x.dies THEN {_dead_reason('x')} ELSE j.reason END,
    updated_at = t.now,
    history = j.history || {_expiry_entry('x')} || CASE
        WHEN x.dies THEN {_entry("'dead'", _dead_reason('x'))}
        WHEN x.go THEN {_entry("'running'", "'attempt ' || (greatest(0, j.attempts - (x.state = 'running')::int) + 1) || ' by ' || %(worker)s")}
        ELSE {_entry("'claimed'", "'claimed by ' || %(worker)s")} END
FROM x, t WHERE j.id = x.id
RETURNING x.n, x.dies, j.queue, j.priority, j.ready_at, {columns('j')}
"""

#: Claim up to ``limit`` jobs of ``queues`` in ONE statement: the best
#: claimable jobs of each queue (walking the claim index in order, skipping
#: rows other claims hold) and any job of these queues whose lease expired
#: (its worker died), ranked by priority then readiness.  An expired job is
#: first swept (``sweep_update``: requeued without charging the attempt) and
#: then claimed, so no separate sweeper is needed for it to run again.  A job
#: whose lease-expiry budget is spent is left to :data:`SWEEP_SQL`, which makes
#: it ``dead`` and reports it (``Swept.dead``) to the worker that swept; the
#: ``dies`` branches below are kept so the statement stays ``sweep_update``
#: even for such a row.  The first ``start_now`` are started (``start_update``),
#: except a job whose lease expired while it ran (``starts_at_claim``).
#: Returns ``n, dies, queue, priority, ready_at`` and the job's columns.
CLAIM_SQL = _claim(_FROM_FRONT + _EXPIRED)

#: :data:`CLAIM_SQL` from each queue's floor (``fp``, ``fr``, ``fi`` arrays
#: parallel to ``queues``); when nothing is found from there, the whole of
#: :data:`CLAIM_SQL` (front and expired leases) in the same statement.  The
#: claims a worker makes between two :data:`CLAIM_SQL` (see ``PostgresBackend.exchange``).
CLAIM_FROM_FLOOR_SQL = _claim_from_floor()

#: Return expired leases to the queue (or to ``dead``), ``sweep_update`` in SQL.
SWEEP_SQL = f"""
WITH {NOW_CTE},
x AS (
    SELECT {_PICK_COLUMNS}, j.token AS old_token, j.lease_expires_at AS old_lease, j.reason AS old_reason,
           (j.state = 'running' AND j.lease_expiries + 1 > j.max_lease_expiries) AS dies
    FROM {{s}}.jobs j, t
    WHERE j.state IN ('claimed','running') AND j.lease_expires_at < t.now
    LIMIT 1000 FOR UPDATE OF j SKIP LOCKED
)
UPDATE {{s}}.jobs j SET
    state = CASE WHEN x.dies THEN 'dead' ELSE 'queued' END,
    token = NULL, lease_expires_at = NULL, worker_id = NULL,
    attempts = greatest(0, j.attempts - (x.state = 'running')::int),
    lease_expiries = j.lease_expiries + (x.state = 'running')::int,
    finished_at = CASE WHEN x.dies THEN t.now ELSE j.finished_at END,
    reason = CASE WHEN x.dies THEN {_dead_reason('x')} ELSE j.reason END,
    updated_at = t.now,
    history = j.history || {_expiry_entry('x')}
        || CASE WHEN x.dies THEN {_entry("'dead'", _dead_reason('x'))} ELSE '[]'::jsonb END
FROM x, t WHERE j.id = x.id
RETURNING x.dies, x.old_worker, x.old_token, x.old_lease, x.old_reason, {columns('j')}
"""

#: ``start_update`` for (id, token) pairs whose job is still ``claimed`` with that token.
START_SQL = f"""
WITH {NOW_CTE}, s AS (SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::int8[]) AS s(id, token))
UPDATE {{s}}.jobs j SET
    state = 'running', attempts = j.attempts + 1, started_at = t.now, updated_at = t.now,
    history = j.history || {_entry("'running'", "'attempt ' || (j.attempts + 1) || ' by ' || coalesce(j.worker_id, 'None')")}
FROM s, t WHERE j.id = s.id AND j.token = s.token AND j.state = 'claimed'
RETURNING j.id
"""

#: ``finish_update`` (``apply_outcome`` with the server's time) for a batch of
#: completions, each fenced by its token.  ``delay`` is the retry delay the
#: worker asked for (``outcome.eta - outcome.at``), counted from the server's now.
FINISH_SQL = f"""
WITH {NOW_CTE},
c AS (
    SELECT c.*, CASE WHEN c.kind = 'retry' THEN (CASE WHEN c.delay > 0 THEN 'scheduled' ELSE 'queued' END)
                     ELSE c.kind END AS new_state
    FROM unnest(%(ids)s::text[], %(tokens)s::int8[], %(kinds)s::text[], %(results)s::text[], %(errors)s::text[],
                %(delays)s::float8[], %(reasons)s::text[], %(notes)s::text[], %(ords)s::int4[])
         AS c(id, token, kind, result, error, delay, reason, note, ord)
)
UPDATE {{s}}.jobs j SET
    state = c.new_state,
    eta = CASE WHEN c.kind = 'retry' THEN t.now + c.delay ELSE j.eta END,
    ready_at = CASE WHEN c.kind = 'retry' THEN coalesce(t.now + c.delay, j.created_at) ELSE j.ready_at END,
    finished_at = CASE WHEN c.kind = 'retry' THEN j.finished_at ELSE t.now END,
    result = CASE WHEN c.kind = 'succeeded' THEN (CASE WHEN j.store_result THEN c.result END) ELSE j.result END,
    reason = CASE c.kind WHEN 'dead' THEN c.reason WHEN 'cancelled' THEN coalesce(c.reason, 'cancelled')
                  ELSE j.reason END,
    token = NULL, lease_expires_at = NULL, worker_id = NULL, cancel_requested = false, updated_at = t.now,
    errors = j.errors || coalesce(c.error::jsonb, '[]'::jsonb),
    history = j.history || {_entry("c.new_state", '''CASE c.kind
        WHEN 'retry' THEN coalesce(c.note, CASE WHEN c.new_state = 'scheduled' THEN 'retry scheduled' ELSE 'retry' END)
        WHEN 'dead' THEN c.reason WHEN 'cancelled' THEN coalesce(c.reason, 'cancelled') ELSE c.note END''')}
FROM c, t WHERE j.id = c.id AND j.token = c.token AND j.state IN ('claimed','running')
RETURNING c.ord, c.new_state
"""

#: Extend the leases still held; returns the ids renewed (the others are lost).
RENEW_SQL = f"""
WITH {NOW_CTE}, s AS (SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::int8[]) AS s(id, token))
UPDATE {{s}}.jobs j SET lease_expires_at = t.now + %(lease)s
FROM s, t WHERE j.id = s.id AND j.token = s.token AND j.state IN ('claimed','running')
RETURNING j.id, j.cancel_requested AND j.state = 'running'
"""

#: The leases still held (without renewing them), and which have a cancellation request.
HELD_SQL = """
SELECT j.id, j.cancel_requested AND j.state = 'running'
FROM unnest(%(ids)s::text[], %(tokens)s::int8[]) AS s(id, token)
JOIN {s}.jobs j ON j.id = s.id AND j.token = s.token AND j.state IN ('claimed','running')
"""

#: ``release_update``: a claim that never started goes back as it was.
RELEASE_SQL = f"""
WITH {NOW_CTE}
UPDATE {{s}}.jobs j SET state = 'queued', token = NULL, lease_expires_at = NULL, worker_id = NULL,
    updated_at = t.now, history = j.history || {_entry("'queued'", "'released unstarted'")}
FROM t WHERE j.id = %(id)s AND j.token = %(token)s AND j.state = 'claimed'
RETURNING j.id
"""

REGISTER_WORKER_SQL = """
INSERT INTO {s}.workers (id, heartbeat_at, data) VALUES (%(id)s, %(at)s, %(data)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, data = excluded.data
"""

#: Move finished jobs from the hot table to the history table, a batch at a
#: time, in ONE statement: only when the id lock is free (an enqueue of an
#: explicit id might race with the move otherwise); returns (lock taken, moved).
MOVE_SQL = f"""
WITH {NOW_CTE},
lk AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext(%(lock)s)) AS ok),
moved AS (
    DELETE FROM {{s}}.jobs WHERE (SELECT ok FROM lk) AND id IN (
        SELECT id FROM {{s}}.jobs, t WHERE state IN ('succeeded','failed','cancelled','dead')
        AND finished_at < t.now - %(keep)s
        ORDER BY finished_at LIMIT %(batch)s FOR UPDATE OF jobs SKIP LOCKED)
    RETURNING *
),
ins AS (
    INSERT INTO {{s}}.jobs_done SELECT * FROM moved
    ON CONFLICT (id) DO UPDATE SET {", ".join(f"{c.strip().split('::')[0]} = excluded.{c.strip().split('::')[0]}" for c in JOB_COLUMNS.split(",") if c.strip() != "id")},
        queue = excluded.queue, priority = excluded.priority, ready_at = excluded.ready_at,
        created_at = excluded.created_at, unique_key = excluded.unique_key,
        max_lease_expiries = excluded.max_lease_expiries, store_result = excluded.store_result
    RETURNING 1
)
SELECT (SELECT ok FROM lk), (SELECT count(*) FROM ins)
"""

#: Delete history past the retention (``retention`` NULL: none) a batch at a
#: time, and registrations of workers silent for a day: one statement.
EXPIRE_SQL = f"""
WITH {NOW_CTE},
gone AS (DELETE FROM {{s}}.workers w USING t WHERE w.heartbeat_at < t.now - 86400 RETURNING 1)
DELETE FROM {{s}}.jobs_done WHERE id IN (
    SELECT id FROM {{s}}.jobs_done, t WHERE finished_at < t.now - %(retention)s::float8 LIMIT %(batch)s)
"""
