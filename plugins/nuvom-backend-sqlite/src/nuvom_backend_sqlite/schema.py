"""The tables and indexes.  ``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`.

A job is one row (version 3): the columns that claims and filters need,
indexed; the hot columns that transitions change (state, token, lease,
attempts, times, result, reason; ``history`` and ``errors`` as JSON arrays
that are only appended to); and the cold part of the job as JSON (``data``:
task, args, kwargs, options), written once at enqueue.  See
:mod:`nuvom_backend_sqlite.rows`.
"""

from __future__ import annotations

SCHEMA_VERSION = 5

#: States in which a job holds its ``unique_key``.
LIVE = "('queued','scheduled','claimed','running')"
#: States in which a worker holds the lease.
LEASED = "('claimed','running')"
TERMINAL = "('succeeded','failed','cancelled','dead')"

#: The hot columns that version 3 added to version 2's table.
HOT_COLUMNS_V3: tuple[str, ...] = (
    "attempts INTEGER NOT NULL DEFAULT 0",
    "eta REAL",
    "updated_at REAL",
    "started_at REAL",
    "worker_id TEXT",
    "result TEXT",
    "progress TEXT",
    "reason TEXT",
    "cancel_requested INTEGER NOT NULL DEFAULT 0",
    "lease_expiries INTEGER NOT NULL DEFAULT 0",
    "history TEXT NOT NULL DEFAULT '[]'",
    "errors TEXT NOT NULL DEFAULT '[]'",
)

#: Run before SCHEMA_SQL when opening a file of an older version, from the
#: file's version up: ``MIGRATIONS[v]`` takes version v to v + 1.  (Version 2
#: to 3 also converts every row: :func:`nuvom_backend_sqlite.database.split_rows`.)
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # version 2 adds the 'claimed' state: the partial indexes cover it
    1: ("DROP INDEX IF EXISTS jobs_lease", "DROP INDEX IF EXISTS jobs_unique"),
    # version 3 splits each job into hot columns and the cold JSON
    2: tuple(f"ALTER TABLE jobs ADD COLUMN {column}" for column in HOT_COLUMNS_V3),
    # version 4 indexes ready_at after (queue, state) (jobs_queue_state_ready, below)
    3: ("DROP INDEX IF EXISTS jobs_queue_state",),
    # version 5 lists jobs through jobs_listing and jobs_state_listing (below)
    4: ("DROP INDEX IF EXISTS jobs_created",),
}
#: The indexes version 5 added for the job store's listing (``query_jobs``) in
#: place of version 4's ``jobs_created``; bench/run.py's ``nuvom-sqlite-v4idx``
#: puts that one back to measure what they cost.
LISTING_INDEXES: tuple[str, ...] = (
    # newest first by (created_at, id) with no sort step; a filter by task or
    # queue and a search of id or task are checked on the index entries, so
    # only matching rows are read (100k jobs, searching for what none has:
    # 145 ms -> 35 ms).  Its columns never change after enqueue: transitions
    # do not touch it.
    "CREATE INDEX IF NOT EXISTS jobs_listing ON jobs (created_at, id, task, queue)",
    # a state filter seeks its jobs instead of walking past every other one
    # (100k jobs, 80k of them queued, the newest failed: 50-90 ms -> 0.2 ms);
    # state changes on every transition, so claims and outcomes update it too
    "CREATE INDEX IF NOT EXISTS jobs_state_listing ON jobs (state, created_at, id)",
)

SCHEMA_SQL: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        ready_at REAL NOT NULL,
        created_at REAL NOT NULL,
        finished_at REAL,
        unique_key TEXT,
        token INTEGER,
        lease_expires_at REAL,
        task TEXT NOT NULL,
        data TEXT NOT NULL,
        {", ".join(HOT_COLUMNS_V3)}
    )""",
    # Claims walk this index in order: O(log n) whatever the number of finished rows.
    """CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (queue, priority DESC, ready_at, id)
        WHERE state IN ('queued','scheduled')""",
    f"CREATE INDEX IF NOT EXISTS jobs_lease2 ON jobs (lease_expires_at) WHERE state IN {LEASED}",
    f"""CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique2 ON jobs (unique_key)
        WHERE unique_key IS NOT NULL AND state IN {LIVE}""",
    *LISTING_INDEXES,
    "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL",
    # counts() scans it (covering); with ready_at, oldest_queued_at() is one seek
    # per queue instead of a scan of every queued row (100k rows: 25 ms -> 0.01 ms)
    "CREATE INDEX IF NOT EXISTS jobs_queue_state_ready ON jobs (queue, state, ready_at)",
    """CREATE TABLE IF NOT EXISTS workers (
        id TEXT PRIMARY KEY,
        heartbeat_at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
    # Fencing tokens come from one counter, so a token is never reused, even
    # for a job that was purged and enqueued again under the same id.
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('token', 0)",
    # Rows whose JSON could not be decoded, kept for inspection.
    """CREATE TABLE IF NOT EXISTS quarantine (
        id TEXT NOT NULL,
        at REAL NOT NULL,
        reason TEXT NOT NULL,
        data TEXT
    )""",
)
