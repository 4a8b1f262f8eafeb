"""The doorbell's publish survives Windows-style sharing violations."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from nuvom_support.doorbell import UdpDoorbell


def test_publish_retries_sharing_violations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace
    failures = {"left": 3}

    def flaky_replace(src: str, dst: str) -> None:
        if failures["left"] > 0 and str(dst).endswith(".port"):
            failures["left"] -= 1
            raise PermissionError(32, "The process cannot access the file because it is being used")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    bell = UdpDoorbell(tmp_path / "bell")
    rang = threading.Event()
    unsubscribe = bell.subscribe(rang.set)
    try:
        assert failures["left"] == 0
        assert list((tmp_path / "bell").glob("*.port"))
        bell.ring()
        assert rang.wait(10)
    finally:
        unsubscribe()
        bell.close()
