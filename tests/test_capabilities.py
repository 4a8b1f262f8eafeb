"""Storage roles: a backend declares what it provides; the kernel names what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from nuvom_backend_memory import MemoryBackend
from support import running_worker

import nuvom.sdk
from nuvom import task
from nuvom_kernel.app import Nuvom
from nuvom_kernel.contracts import CAPABILITIES, capabilities_of
from nuvom_kernel.errors import CapabilityError
from nuvom_kernel.models import JobState


@task(name="caps.echo")
def echo(value: int) -> int:
    return value


class QueueOnly(MemoryBackend):
    """A hot-path-only backend: it declares just the queue role."""

    capabilities = frozenset({"queue"})


def test_the_built_in_backends_provide_every_role(tmp_path: Path) -> None:
    assert capabilities_of(MemoryBackend()) == frozenset(CAPABILITIES)
    for name in ("sqlite", "file"):
        app = Nuvom(root=tmp_path / name, environ={}, queue_backend=name, result_backend=name)
        try:
            assert capabilities_of(app.queue) == frozenset(CAPABILITIES)
            assert app.provides("jobs") and app.provides("workers")
        finally:
            app.close()


def test_a_missing_role_is_named_and_the_worker_still_runs_jobs(tmp_path: Path) -> None:
    backend = QueueOnly()
    app = Nuvom(root=tmp_path, environ={}, queue=backend, results=backend, log_level="WARNING")
    assert capabilities_of(backend) == {"queue"} and not app.provides("jobs")
    with pytest.raises(CapabilityError, match="provides no job store.*declares: queue"):
        nuvom.sdk.list_jobs(app=app)
    with pytest.raises(CapabilityError, match="worker registry"):
        app.workers.list_workers()
    with pytest.raises(CapabilityError):
        nuvom.sdk.stats(app=app)
    job = echo.options(app=app).delay(5)
    with running_worker(app, burst=True):
        pass
    stored = backend.get(job.id)  # the object itself still has it: only the declared roles are used
    assert stored is not None and stored.state == JobState.SUCCEEDED and stored.result == 5
