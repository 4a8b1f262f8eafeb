"""In-memory queue and result backend for Nuvom (component name ``memory``)."""

from __future__ import annotations

from nuvom_backend_memory.backend import MemoryBackend

__all__ = ["MemoryBackend"]
