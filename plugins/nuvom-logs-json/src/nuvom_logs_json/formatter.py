"""``JsonFormatter``: a ``logging.Formatter`` that writes one JSON object per record.

It formats any record, Nuvom's or not: the fixed fields first, then the
record's ``extra=`` fields, then the static fields it was given.  A host
application can attach it to its own handler; Nuvom never does that for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

#: The fields every line may carry, in the order they are written (docs/observability.md).
FIELDS = (
    "timestamp", "level", "event", "message", "logger",
    "job_id", "task", "queue", "attempt", "state", "duration", "worker_id",
    "error_type", "error_message", "traceback",
)
#: Fields a line always has.
ALWAYS = ("timestamp", "level", "event", "message", "logger")
#: What ``event`` is for a record that does not name one (any other log record).
PLAIN_EVENT = "log"

# attributes every LogRecord has: anything else on a record came from ``extra=``
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def rfc3339(created: float) -> str:
    """``2026-11-29T18:34:50.123456Z``: RFC 3339, UTC, microseconds."""
    return datetime.fromtimestamp(created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a field, never extra lines).

    ``static_fields`` (e.g. ``{"service": "billing"}``) are added to every
    line; they may not reuse a name from :data:`FIELDS`.
    """

    def __init__(self, static_fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        static = dict(static_fields or {})
        clash = sorted(set(static) & set(FIELDS))
        if clash:
            raise ValueError(f"static log field(s) {', '.join(clash)} would hide Nuvom's own field(s) of that "
                             f"name; rename them (Nuvom's fields: {', '.join(FIELDS)})")
        self.static_fields = static

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False, default=str, separators=(",", ":"))

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The object written for ``record`` (before JSON encoding)."""
        out: dict[str, Any] = {
            "timestamp": rfc3339(record.created),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or PLAIN_EVENT,
            "message": record.getMessage(),
            "logger": record.name,
        }
        extras = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and k != "event"}
        for name in FIELDS[len(ALWAYS):]:
            value = extras.pop(name, None)
            if value is not None:
                out[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc = record.exc_info[1]
            out.setdefault("error_type", record.exc_info[0].__name__)
            out.setdefault("error_message", str(exc))
            out.setdefault("traceback", self.formatException(record.exc_info))
        elif record.exc_text:
            out.setdefault("traceback", record.exc_text)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in extras.items():
            if not key.startswith("_") and key not in out:
                out[key] = value
        for key, value in self.static_fields.items():
            out.setdefault(key, value)
        return out
