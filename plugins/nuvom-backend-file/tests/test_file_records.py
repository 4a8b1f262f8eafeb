"""Record format: torn, truncated, bit-flipped, lying and foreign files are
detected, quarantined with a reason, and the queue keeps flowing."""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from nuvom_backend_file import FileBackend
from nuvom_backend_file import records as records_module
from nuvom_backend_file.layout import ready_name
from nuvom_backend_file.records import HEADER, MAGIC, JobRecord, decode, encode, read_record

from nuvom_kernel.errors import CorruptJobError, PayloadError
from nuvom_kernel.models import Job, JobState

SEED = 20240611
LIMIT = 5 * 1024 * 1024


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[FileBackend]:
    b = FileBackend(tmp_path / "jobs", fsync=False)
    yield b
    b.close()


def _valid_bytes(job: Job) -> bytes:
    return encode(JobRecord(job=job), LIMIT)


def _plant(backend: FileBackend, job: Job, data: bytes) -> Path:
    """Write raw bytes where a queued job's file would be."""
    path = backend.layout.ready_path(job)
    path.write_bytes(data)
    return path


def test_round_trip() -> None:
    job = Job(task="t", args=[1, "ü"], kwargs={"a": None})
    data = _valid_bytes(job)
    assert data[:4] == MAGIC
    got = decode(data, len(data))
    assert got.job.id == job.id and got.job.args == [1, "ü"] and got.fence == 0


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:10], "truncated"),
        (lambda d: d[: len(d) // 2], "length header says"),
        (lambda d: b"PK\x03\x04" + d[4:], "bad magic"),
        (lambda d: d[:4] + struct.pack("<H", 9) + d[6:], "format version 9"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 0x01]), "checksum mismatch"),
        (lambda d: d + b"x", "length header says"),
    ],
)
def test_each_kind_of_damage_is_named(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    data = mutate(_valid_bytes(Job(task="t")))
    with pytest.raises(CorruptJobError, match=reason):
        decode(data, len(data))


def test_valid_checksum_but_not_a_job() -> None:
    payload = b'{"fence": 1, "job": {"task": 5}}'
    data = HEADER.pack(MAGIC, 1, 0, len(payload), zlib.crc32(payload)) + payload
    with pytest.raises(CorruptJobError, match="not a valid job"):
        decode(data, len(data))


def test_lying_length_header_never_allocates_for_the_lie(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "liar.job"
    path.write_bytes(HEADER.pack(MAGIC, 1, 0, 0xFFFFFFFF, 0) + b"{}")
    asked: list[int] = []
    real_read = os.read

    def spy(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(records_module.os, "read", spy)
    with pytest.raises(CorruptJobError, match="length header says 4294967295"):
        read_record(path, LIMIT)
    assert asked and max(asked) <= path.stat().st_size


def test_oversize_file_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.job"
    with open(path, "wb") as fh:
        fh.truncate(2048)
    with pytest.raises(CorruptJobError, match="over the record limit"):
        read_record(path, 1024)


def test_oversize_job_is_refused_at_enqueue_naming_the_limit(tmp_path: Path) -> None:
    b = FileBackend(tmp_path / "jobs", max_record_bytes=10_000, doorbell=False)
    try:
        with pytest.raises(PayloadError, match="record limit of 10000 bytes"):
            b.enqueue(Job(task="t", args=["x" * 20_000]))
        assert b.counts() == {}
    finally:
        b.close()


def _damage(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "lie", "garbage", "empty", "extend", "header-only"])
    if kind == "truncate":
        return kind, data[: rng.randrange(0, len(data))]
    if kind == "flip":
        pos = rng.randrange(len(data))
        return kind, data[:pos] + bytes([data[pos] ^ (1 << rng.randrange(8))]) + data[pos + 1:]
    if kind == "lie":
        length = rng.choice([0, 1, len(data), 2**31, 2**32 - 1])
        return kind, data[:8] + struct.pack("<I", length) + data[12:]
    if kind == "garbage":
        return kind, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if kind == "empty":
        return kind, b""
    if kind == "extend":
        return kind, data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 50)))
    return kind, data[: HEADER.size]


def test_fuzzed_files_are_quarantined_and_good_jobs_still_flow(backend: FileBackend) -> None:
    rng = random.Random(SEED)
    print(f"fuzz seed {SEED}")
    bad: list[str] = []
    good: list[str] = []
    for i in range(300):
        job = Job(task="fuzz", args=[i, "x" * rng.randrange(0, 40)], priority=rng.randrange(-3, 4))
        kind, data = _damage(rng, _valid_bytes(job))
        _plant(backend, job, data)
        bad.append(f"{kind}:{job.id}")
        if i % 10 == 0:
            good.append(backend.enqueue(Job(task="ok", args=[i])).id)
    claimed: list[Job] = []
    for _ in range(200):
        got = backend.claim(["default"], 32, 30.0, "w")
        claimed.extend(got)
        if not got and not list((backend.layout.ready / "default").iterdir()):
            break
    assert sorted(j.id for j in claimed) == sorted(good), f"seed {SEED}"
    quarantined = [p for p in backend.layout.quarantine.iterdir() if not p.name.endswith(".reason")]
    reasons = [p.read_text() for p in backend.layout.quarantine.iterdir() if p.name.endswith(".reason")]
    assert len(quarantined) == 300 and len(reasons) == 300, f"seed {SEED}"
    assert all("reason: " in r for r in reasons)
    assert not list((backend.layout.ready / "default").iterdir())


def test_corrupt_running_file_is_quarantined_by_sweep(backend: FileBackend) -> None:
    job = backend.enqueue(Job(task="t"))
    [claimed] = backend.claim(["default"], 1, 30.0, "w")
    path = backend.layout.run_path(claimed.id)
    path.write_bytes(path.read_bytes()[:-5])
    assert backend.sweep() == 0
    assert not path.exists()
    [note] = [p for p in backend.layout.quarantine.iterdir() if p.name.endswith(".reason")]
    assert "run-" in note.name and "length header says" in note.read_text()
    dead = backend.get(job.id)  # dead-lettered: the payload could not be decoded
    assert dead is not None and dead.state == JobState.DEAD and "could not be decoded" in (dead.reason or "")


def test_foreign_file_names_are_quarantined(backend: FileBackend) -> None:
    backend.enqueue(Job(task="t"))
    stray = backend.layout.ready / "default" / "notes.txt"
    stray.write_text("hello")
    assert len(backend.claim(["default"], 5, 30.0, "w")) == 1
    assert not stray.exists()
    [note] = [p for p in backend.layout.quarantine.iterdir() if p.name.endswith(".reason")]
    assert "unrecognised file name 'notes.txt'" in note.read_text()


def test_name_and_content_disagreeing_is_quarantined(backend: FileBackend) -> None:
    real = Job(task="t")
    other = Job(task="t")
    path = backend.layout.ready / "default" / ready_name(other)
    backend.layout.queue_dir(backend.layout.ready, "default")
    path.write_bytes(_valid_bytes(real))
    assert backend.claim(["default"], 5, 30.0, "w") == []
    [note] = [p for p in backend.layout.quarantine.iterdir() if p.name.endswith(".reason")]
    assert "holds job" in note.read_text()
