"""The kit's serializer contract on msgpack (and, for comparison, on the kernel's JSON),
plus what msgpack adds: bytes travel as bytes, end to end through a worker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from nuvom_serializer_msgpack import MsgpackSerializer

from nuvom_kernel.builtin_serializers import JsonSerializer
from nuvom_kernel.errors import PayloadError
from nuvom_kernel.testing import SerializerContract


class TestMsgpackContract(SerializerContract):
    @pytest.fixture
    def serializer(self) -> MsgpackSerializer:
        return MsgpackSerializer()


class TestJsonContract(SerializerContract):
    @pytest.fixture
    def serializer(self) -> JsonSerializer:
        return JsonSerializer()


def test_ext_types_are_refused() -> None:
    import msgpack

    with pytest.raises(ValueError, match="extension type 5"):
        MsgpackSerializer().loads(msgpack.packb(msgpack.ExtType(5, b"x")))


def test_bytes_and_settings_selection_end_to_end(tmp_path: Path) -> None:
    """NUVOM_SERIALIZATION_BACKEND=msgpack on SQLite: bytes in, bytes out; a
    producer on JSON settings still decodes the result (the envelope names msgpack)."""
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.worker import Worker

    def make(serialization: str) -> Nuvom:
        return Nuvom(root=tmp_path, environ={}, queue_backend="sqlite", result_backend="sqlite",
                     serialization_backend=serialization, log_level="WARNING", poll_interval_secs=0.1)

    app = make("msgpack")
    assert app.serializer.name == "msgpack"

    @app.task(name="mp.reverse")
    def reverse(blob: bytes) -> bytes:
        assert isinstance(blob, bytes)
        return blob[::-1]

    handle = reverse.delay(b"\x00\x01binary\xff")
    with pytest.raises(PayloadError, match="cannot be serialised with msgpack"):
        reverse.delay(object())
    worker = Worker(app, concurrency=1, burst=True)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert handle.result(timeout=10) == b"\xffyranib\x01\x00"
    reader = make("json")  # another process's settings: the envelope says how to decode
    try:
        assert reader.decode_value(reader.get_job(handle.id).result) == b"\xffyranib\x01\x00"
    finally:
        reader.close()
        app.close()


TASKS = '''
from nuvom import task


@task(name="mp.pack")
def pack(blob, n=1):
    return {"n": n * 2, "blob": blob}
'''


def test_the_cli_shows_decoded_payloads(tmp_path: Path) -> None:
    """Producer, worker and CLI as separate processes with msgpack set in .env."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "mptasks.py").write_text(TASKS, encoding="utf-8")
    (tmp_path / ".env").write_text("NUVOM_SERIALIZATION_BACKEND=msgpack\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
    env.update(NUVOM_PROJECT_ROOT=str(tmp_path), PYTHONPATH=str(tmp_path))

    def run(*cmd: str) -> str:
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    job_id = run(sys.executable, "-c", "from mptasks import pack; print(pack.delay(b'\\x00\\xff', n=21).id)").strip()
    nuvom = [sys.executable, "-m", "nuvom_cli"]
    table = run(*nuvom, "inspect", "job", job_id)  # for people: decoded, bytes as their repr
    assert r"b'\\x00\\xff'" in table and '"n": 21' in table  # JSON-escaped in the table
    exported = json.loads(run(*nuvom, "inspect", "job", job_id, "--format", "json"))
    assert exported["args"][0]["$nuvom_payload"] == "msgpack"  # lossless: bytes stay in their envelope
    run(*nuvom, "runworker", "--tasks", "mptasks", "--burst")
    status = json.loads(run(*nuvom, "status", job_id, "--json"))
    assert status["state"] == "succeeded" and status["result"] == {"n": 42, "blob": "b'\\x00\\xff'"}
    listed = json.loads(run(*nuvom, "history", "--json"))
    assert listed[0]["result"] == {"n": 42, "blob": "b'\\x00\\xff'"}


def test_a_worker_without_the_serializer_dead_letters_naming_the_plugin(tmp_path: Path) -> None:
    from nuvom_kernel.app import Nuvom
    from nuvom_kernel.models import JobState
    from nuvom_kernel.worker import Worker

    def make(serialization: str, environ: dict[str, str]) -> Nuvom:
        return Nuvom(root=tmp_path, environ=environ, queue_backend="sqlite", result_backend="sqlite",
                     serialization_backend=serialization, log_level="WARNING", poll_interval_secs=0.1)

    producer = make("msgpack", {})
    worker_app = make("json", {"NUVOM_DISABLE_PLUGINS": "nuvom-serializer-msgpack"})
    try:
        @worker_app.task(name="mp.echo")
        def echo(x: int) -> int:
            return x

        handle = echo.options(app=producer).delay(5)
        worker = Worker(worker_app, concurrency=1, burst=True)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        thread.join(60)
        job = producer.get_job(handle.id)
        assert job.state == JobState.DEAD
        assert job.reason and "'msgpack' serializer" in job.reason and "nuvom-serializer-msgpack" in job.reason
    finally:
        producer.close()
        worker_app.close()
