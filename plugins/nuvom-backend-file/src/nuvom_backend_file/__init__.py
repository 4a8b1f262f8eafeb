"""Nuvom's file backend: jobs and results as files in one directory."""

from __future__ import annotations

from nuvom_backend_file.backend import FileBackend
from nuvom_backend_file.records import JobRecord

__all__ = ["FileBackend", "JobRecord"]
