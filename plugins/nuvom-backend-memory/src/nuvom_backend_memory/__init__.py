"""In-memory queue and result backend for Nuvom (component name ``memory``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_backend_memory.backend import MemoryBackend

__all__ = ["MemoryBackend"]

__getattr__ = lazy_exports(__name__, {"MemoryBackend": "backend"})
