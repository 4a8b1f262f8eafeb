"""Tracebacks shown to users start at the user's code.

A task's traceback passes through the executor, the worker and the execution
step before it reaches the task; those frames say nothing to the task's
author.  :func:`user_traceback` drops the leading frames that belong to Nuvom
itself (the kernel and plugin packages, and importlib's machinery when a task
module is imported) and keeps everything from the first other frame on.  If
every frame is Nuvom's (a bug in Nuvom or a plugin), the traceback is kept whole.
"""

from __future__ import annotations

import traceback
from types import TracebackType

#: Module-name prefixes of Nuvom's own packages (the kernel and plugin distributions).
INTERNAL_PREFIXES = ("nuvom_kernel.", "nuvom_executor_", "nuvom_backend_", "nuvom_cli.", "nuvom_discovery_",
                     "importlib.")
INTERNAL_MODULES = ("importlib", "runpy")


def _internal(tb: TracebackType) -> bool:
    frame = tb.tb_frame
    module = str(frame.f_globals.get("__name__", ""))
    return (module.startswith(INTERNAL_PREFIXES) or module in INTERNAL_MODULES
            or frame.f_code.co_filename.startswith("<frozen importlib"))


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without its leading Nuvom frames (unchanged if they are all Nuvom's)."""
    start = tb
    while start is not None and _internal(start):
        start = start.tb_next
    return start if start is not None else tb


def user_traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc``, starting at the user's code."""
    return "".join(traceback.format_exception(type(exc), exc, user_frames(exc.__traceback__)))
