"""Nuvom's file backend: jobs and results as files in one directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_backend_file.backend import FileBackend
    from nuvom_backend_file.records import JobRecord

__all__ = ["FileBackend", "JobRecord"]

__getattr__ = lazy_exports(__name__, {"FileBackend": "backend", "JobRecord": "records"})
