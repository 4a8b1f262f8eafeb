"""R3: a producer killed mid-burst never loses a returned enqueue, and the
workers never see a torn job."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from reliability.checker import check, read_executions
from reliability.harness import ALL_BACKENDS, HERE, Project, describe, make_rng, size

_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_r3_killed_producer_loses_no_returned_enqueue(backend: str, make_project: Callable[..., Project]) -> None:
    rng, seed = make_rng(f"R3[{backend}]")
    kills = size(20, 100, backend=backend, net=5)
    project = make_project(backend)
    started = time.monotonic()
    returned: list[str] = []
    try:
        project.app.queue  # noqa: B018 - create the storage before producers race to
        worker = project.start_worker(concurrency=4)
        worker.wait_ready()
        for k in range(kills):
            err_path = project.logs / f"producer-{k}.stderr"
            with open(err_path, "wb") as err:
                producer = subprocess.Popen([sys.executable, str(HERE / "rel_producer.py")], cwd=project.root,
                                            env=project.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=err)
            assert producer.stdout is not None
            wanted = rng.randint(1, 60)
            got = 0
            while got < wanted:
                line = producer.stdout.readline()
                if not line:
                    raise AssertionError(f"producer exited early ({producer.wait()}): {err_path.read_text()}")
                returned.append(line.decode().strip())
                got += 1
            time.sleep(rng.uniform(0, 0.003))  # land the kill anywhere in the next enqueue
            producer.kill()
            producer.wait(30)
            # read the rest through the same buffered reader (readline may have read ahead)
            rest = producer.stdout.read().decode(errors="replace").split("\n")
            producer.stdout.close()
            torn_last = rest.pop()  # "" after a final newline; else a line cut by the kill
            assert not torn_last or re.fullmatch(r"[0-9a-f]{0,32}", torn_last), torn_last
            returned += rest
        assert all(_ID.match(r) for r in returned)
        project.wait_drained(timeout=size(120, 600))
        project.stop_all()
        executions, torn = read_executions(project.exec_dir)
        report = check(returned, executions, project.final_jobs(returned), [], torn)
        every = project.app.list_jobs(limit=10**6)
        quarantined = project.quarantined()
    finally:
        project.close()
    extra = {j.id for j in every} - set(returned)  # enqueued, but killed before printing its id
    bad = [j for j in every if j.state.value != "succeeded"]
    describe({"property": "R3", "backend": backend, "seed": seed, "producer_kills": kills,
              "returned_enqueues": len(returned), "stored_but_unreported": len(extra), "lost": len(report.lost),
              "quarantined": len(quarantined), "duration_s": round(time.monotonic() - started, 1)})
    detail = f"seed {seed}: {report.summary()} {report.examples()}"
    assert len(set(returned)) == len(returned)
    assert len(extra) <= kills, "at most one enqueue per kill may commit without returning"
    assert not report.lost and not report.unfinished and not report.duplicates, detail
    assert report.states == {"succeeded": len(returned)}, detail
    assert not quarantined, f"seed {seed}: torn jobs reached the workers: {quarantined[:3]}"
    assert not bad, f"seed {seed}: jobs not succeeded: {[(j.id, j.state.value, j.reason) for j in bad[:5]]}"
