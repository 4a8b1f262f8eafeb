"""S3 (unsafe ids refused everywhere) and S5 (owner-only permissions whatever
the umask), through the API, the CLI in a separate process, and every backend."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import nuvom.sdk
from nuvom_kernel.errors import InvalidIdError
from nuvom_kernel.models import Job, Outcome
from reliability.harness import BACKENDS, HERE, TASKS_FILE, Project

BAD_IDS = ["../x", "..\\x", "CON", "con.txt", "a/b", "nul\x00byte", "x" * 65, "y" * 5000, "", ".hidden", "-dash"]


def _backend(name: str, root: Path) -> Any:
    if name == "memory":
        from nuvom_backend_memory import MemoryBackend

        return MemoryBackend()
    return Project(root, name).app.queue


@pytest.mark.parametrize("backend", ["memory", *BACKENDS])
def test_s3_every_backend_refuses_unsafe_ids(backend: str, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    queue = _backend(backend, root)
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        refused: dict[str, Callable[[str], Any]] = {
            "get": lambda b: queue.get(b),
            "enqueue": lambda b: queue.enqueue(Job(id=b, task="t")),
            "enqueue_many": lambda b: queue.enqueue_many([Job(id=b, task="t")]),
            "cancel": lambda b: queue.cancel(b),
            "retry": lambda b: queue.retry(b),
            "get_result": lambda b: queue.get_result(b),
        }
        # fenced operations: refused with an error, or refused as "not your lease"
        fenced: dict[str, tuple[Callable[[str], Any], Callable[[str], Any]]] = {
            "finish": (lambda b: queue.finish(b, 1, Outcome(kind="succeeded")), lambda b: False),
            "release": (lambda b: queue.release(b, 1), lambda b: False),
            "set_progress": (lambda b: queue.set_progress(b, 1, 1), lambda b: False),
            "renew": (lambda b: queue.renew({b: 1}, 5.0), lambda b: {b}),
        }
        for bad in BAD_IDS:
            for op, call in refused.items():
                with pytest.raises(InvalidIdError):
                    call(bad)
                    pytest.fail(f"{backend}.{op}({bad!r}) was accepted")
            for op, (fenced_call, refusal) in fenced.items():
                try:
                    assert fenced_call(bad) == refusal(bad), f"{backend}.{op}({bad!r}) was accepted"
                except InvalidIdError:
                    pass
    finally:
        queue.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was created outside the project"
    if backend == "file":
        names = [p.name for p in (root / ".nuvom" / "jobs").rglob("*")]
        assert not any(n in ("x", "b", "CON", "con.txt") or n.startswith("nul") for n in names), names


@pytest.mark.parametrize("backend", BACKENDS)
def test_s3_api_refuses_unsafe_ids(backend: str, tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", backend)
    try:
        for bad in BAD_IDS:
            for fn in (nuvom.sdk.get_job, nuvom.sdk.get_job_status, nuvom.sdk.retry_job, nuvom.sdk.cancel_job):
                with pytest.raises(InvalidIdError):
                    fn(bad, app=project.app)
            with pytest.raises(InvalidIdError):
                project.app.get_job(bad)
    finally:
        project.close()


def _cli_commands() -> list[list[str]]:
    """The job commands that exist in this build (``--help`` exits 0)."""
    out = []
    for cmd in (["status"], ["inspect", "job"], ["retry", "job"], ["cancel", "job"]):
        probe = subprocess.run([sys.executable, "-m", "nuvom_cli", *cmd, "--help"], capture_output=True, timeout=120)
        if probe.returncode == 0:
            out.append(cmd)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_s3_cli_refuses_unsafe_ids_with_exit_code_2(backend: str, tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", backend)
    project.app.queue  # noqa: B018 - an existing, empty backend
    project.close()
    commands = _cli_commands()
    assert ["status"] in commands
    failures = []
    for cmd in commands:
        for bad in BAD_IDS:
            if "\x00" in bad or not bad or bad.startswith("-"):
                continue  # cannot be a command-line argument / would be read as an option
            out = subprocess.run([sys.executable, "-m", "nuvom_cli", *cmd, bad], capture_output=True, text=True,
                                 cwd=project.root, env=project.env(), timeout=120)
            if out.returncode != 2 or "invalid job id" not in out.stderr.replace("\n", " "):
                failures.append((cmd, bad[:20], out.returncode, out.stderr[-300:]))
    assert not failures, failures[:5]


def _modes(base: Path) -> tuple[list[str], list[str]]:
    """Directories not 0700 and files not 0600 under ``base`` (inclusive)."""
    bad_dirs, bad_files = [], []
    for path in [base, *base.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir() and mode != 0o700:
            bad_dirs.append(f"{path.relative_to(base.parent)} {mode:o}")
        elif path.is_file() and mode != 0o600:
            bad_files.append(f"{path.relative_to(base.parent)} {mode:o}")
    return bad_dirs, bad_files


def _run_under_umask_0(project: Project) -> None:
    """A producer (3 x ``nuvom enqueue``) and a burst worker, all with umask 0."""
    def nuvom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(HERE / "rel_umask.py"), *args], capture_output=True, text=True,
                              cwd=project.root, env=project.env(), timeout=120)

    produced = [nuvom("enqueue", "rel.work", str(n), "0") for n in range(3)]
    assert all(p.returncode == 0 for p in produced), produced[0].stderr
    worker = nuvom("runworker", "--tasks", str(TASKS_FILE), "--burst", "--no-manifest", "--concurrency", "2")
    assert worker.returncode == 0 and "3 succeeded" in worker.stderr, worker.stderr[-2000:]


def _is_doorbell_port(path: Path) -> bool:
    return path.parent.name in ("doorbell", "result.db.doorbell") and path.name.endswith(".port")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("backend", BACKENDS)
def test_s5_owner_only_permissions_whatever_the_umask(backend: str, tmp_path: Path) -> None:
    project = Project(tmp_path / "proj", backend)
    _run_under_umask_0(project)
    nuvom_dir = project.root / ".nuvom"
    if backend == "file":
        bad_dirs, bad_files = _modes(nuvom_dir / "jobs")
        assert any((nuvom_dir / "jobs" / "done").iterdir()), "no job file was written"
    else:
        db = nuvom_dir / "result.db"
        files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        assert db in files
        bad_files = [f"{p.name} {stat.S_IMODE(p.stat().st_mode):o}" for p in files if stat.S_IMODE(p.stat().st_mode) != 0o600]
        dirs = [db.parent, *(p for p in [Path(f"{db}.doorbell")] if p.exists())]
        bad_dirs = [f"{p.name} {stat.S_IMODE(p.stat().st_mode):o}" for p in dirs if stat.S_IMODE(p.stat().st_mode) != 0o700]
    # doorbell port files are empty markers (the port is in the name) inside a
    # 0700 directory; their mode is checked by the test below
    bad_files = [f for f in bad_files if not f.split(" ")[0].endswith(".port")]
    assert not bad_dirs and not bad_files, (bad_dirs, bad_files)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_s5_doorbell_port_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    from nuvom_support.doorbell import UdpDoorbell

    code = ("import os, sys, pathlib; os.umask(0); from nuvom_support.doorbell import UdpDoorbell; "
            "b = UdpDoorbell(pathlib.Path(sys.argv[1])); unsub = b.subscribe(lambda: None); "
            "print(*[oct(p.stat().st_mode & 0o777) for p in pathlib.Path(sys.argv[1]).iterdir()]); unsub(); b.close()")
    assert UdpDoorbell is not None
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bell")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    modes = out.stdout.split()
    assert modes and all(m == "0o600" for m in modes), modes
