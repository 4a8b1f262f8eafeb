"""Corrupt inputs for R7 and S1: damaged job files and rows, and a pickle bomb.

Nothing here is a test; the tests in ``test_rel_corrupt.py`` place these
inputs where a running worker will find them.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import secrets
import sqlite3
import struct
import zlib
from pathlib import Path
from typing import Any

from nuvom_kernel.models import Job
from nuvom_support.backend_base import enqueue_update

MAGIC = b"NVJ\x01"
HEADER = struct.Struct("<4sHHII")


class MarkerBomb:
    """Unpickling this calls ``open(path, "w")``: the marker file proves a load."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def pickle_bomb(marker: Path) -> bytes:
    return pickle.dumps(MarkerBomb(str(marker)), protocol=2)


def good_job(n: int) -> Job:
    job = Job(task="rel.work", args=[n, 0], max_retries=0, timeout_secs=None)
    return enqueue_update(job)


def record_bytes(payload: bytes, *, version: int = 1, flags: int = 0, length: int | None = None,
                 crc: int | None = None) -> bytes:
    """A file-backend record around ``payload`` (header fields overridable)."""
    return HEADER.pack(MAGIC, version, flags, len(payload) if length is None else length,
                       zlib.crc32(payload) if crc is None else crc) + payload


def file_payload(job: Job, fence: int = 0) -> bytes:
    return json.dumps({"fence": fence, "job": json.loads(job.to_json())}).encode()


def flip_bits(data: bytes, rng: random.Random, count: int) -> bytes:
    buf = bytearray(data)
    for _ in range(count):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def fuzz_file_record(job: Job, rng: random.Random) -> tuple[str, bytes]:
    """(kind, bytes) of a damaged file-backend record for ``job``."""
    good = record_bytes(file_payload(job))
    kind = rng.choice(["truncated", "bitflip", "random", "empty", "not-a-job", "lying-length",
                       "version", "flags", "bad-magic", "wrong-id", "pickle", "bad-json"])
    if kind == "truncated":
        return kind, good[:rng.randrange(len(good))]
    if kind == "bitflip":
        return kind, flip_bits(good, rng, rng.randint(1, 8))
    if kind == "random":
        return kind, os.urandom(rng.randint(1, 2048))
    if kind == "empty":
        return kind, b""
    if kind == "not-a-job":
        return kind, record_bytes(rng.choice([b"[]", b"{}", b"null", b'{"fence": 1}', b'{"fence": 0, "job": {"task": 5}}']))
    if kind == "lying-length":
        return kind, record_bytes(file_payload(job), length=rng.choice([2**31, 2**32 - 1, len(good) * 3]))
    if kind == "version":
        return kind, record_bytes(file_payload(job), version=rng.randint(2, 65535))
    if kind == "flags":
        return kind, record_bytes(file_payload(job), flags=rng.randint(1, 65535))
    if kind == "bad-magic":
        return kind, b"XXXX" + good[4:]
    if kind == "wrong-id":
        other = job.model_copy(update={"id": secrets.token_hex(16)})
        return kind, record_bytes(file_payload(other))
    if kind == "pickle":
        return kind, record_bytes(pickle.dumps({"task": "rel.work", "args": [1]}))
    return kind, record_bytes(file_payload(job)[:-3] + b"}}}" + b"\x00\xff")


def fuzz_row_data(job: Job, rng: random.Random) -> tuple[str, Any]:
    """(kind, value for the ``data`` column) of a damaged SQLite row for ``job``."""
    text = job.to_json()
    kind = rng.choice(["truncated", "bitflip", "random-blob", "random-text", "not-a-job", "integer",
                       "pickle", "bad-types", "empty", "wrong-id"])
    if kind == "truncated":
        return kind, text[:rng.randrange(len(text))]
    if kind == "bitflip":
        # flips outside the id keep the row about this job (a flipped id is "wrong-id")
        raw = text.encode()
        start = raw.index(b'"task"')
        head, tail = raw[:start], raw[start:]
        return kind, (head + flip_bits(tail, rng, rng.randint(1, 6))).decode("utf-8", errors="replace")
    if kind == "random-blob":
        return kind, os.urandom(rng.randint(1, 1024))
    if kind == "random-text":
        return kind, secrets.token_urlsafe(rng.randint(1, 300))
    if kind == "not-a-job":
        return kind, rng.choice(["[]", "{}", "null", '"x"', '{"task": 5}', '{"id": "a", "task": "rel.work", "args": 7}'])
    if kind == "integer":
        return kind, rng.randint(-(2**62), 2**62)
    if kind == "pickle":
        return kind, pickle.dumps(job.model_dump())
    if kind == "bad-types":  # fields the row keeps in its JSON (schema 3: the cold part)
        data = json.loads(text)
        data[rng.choice(["priority", "max_retries", "args", "kwargs", "timeout_secs"])] = {"nested": [1, 2]}
        return kind, json.dumps(data)
    if kind == "wrong-id":  # a well-formed job whose id is not the row's
        return kind, job.model_copy(update={"id": secrets.token_hex(16)}).to_json()
    return kind, ""


def fuzz_row_column(rng: random.Random) -> tuple[str, str, Any]:
    """(kind, column, value): damage to one of the columns a SQLite row keeps
    next to its JSON (schema 3: history, errors, result, counters)."""
    column = rng.choice(["history", "errors", "result", "attempts", "lease_expiries", "progress"])
    if column in ("attempts", "lease_expiries"):
        return f"bad-{column}", column, rng.choice(["many", "1.5x", os.urandom(4)])
    bad = ["{not json", "[1, 2", '{"state": 5}', '"text"', os.urandom(rng.randint(1, 64))]
    if column in ("history", "errors"):
        bad += ["[1, 2]", '[{"nested": {}}]', "{}"]
    return f"bad-{column}", column, rng.choice(bad)


def insert_row(conn: sqlite3.Connection, job_id: str, data: Any, *, task: str = "rel.work",
               state: str = "queued", ready_at: Any = None) -> None:
    import time

    at = time.time()
    conn.execute(
        "INSERT INTO jobs (id, state, queue, priority, ready_at, created_at, finished_at, unique_key, token, "
        "lease_expires_at, task, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (job_id, state, "default", 0, at if ready_at is None else ready_at, at, None, None, None, None, task, data),
    )
