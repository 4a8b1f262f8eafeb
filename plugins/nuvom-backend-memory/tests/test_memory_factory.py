from __future__ import annotations

from pathlib import Path

from nuvom_backend_memory.plugin import make_backend

from nuvom_kernel.app import Nuvom
from nuvom_kernel.settings import NuvomSettings


def test_one_store_per_project_root_and_instance(tmp_path: Path) -> None:
    a = NuvomSettings(project_root=str(tmp_path / "a"))
    b = NuvomSettings(project_root=str(tmp_path / "b"))
    assert make_backend(a, {}) is make_backend(a, {})
    assert make_backend(a, {}) is not make_backend(b, {})
    assert make_backend(a, {"instance": "x"}) is not make_backend(a, {})


def test_producer_and_worker_apps_of_one_project_share_the_store(tmp_path: Path) -> None:
    producer = Nuvom(root=tmp_path, environ={}, queue_backend="memory", result_backend="memory")
    worker = Nuvom(root=tmp_path, environ={}, queue_backend="memory", result_backend="memory")
    assert producer.queue is worker.queue and producer.shares_storage
