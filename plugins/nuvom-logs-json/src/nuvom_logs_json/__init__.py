"""JSON logs for Nuvom: every job and worker event as one JSON object per line.

Enable it with ``NUVOM_LOGS_JSON__ENABLED=1`` (or ``[tool.nuvom.logs_json]``
``enabled = true``); ``nuvom runworker`` then writes JSON lines.  In your own
application, attach :class:`JsonFormatter` to a handler yourself
(docs/observability.md).
"""

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_logs_json.formatter import FIELDS, JsonFormatter
    from nuvom_logs_json.options import JsonLogsOptions, make_handler

__all__ = ["FIELDS", "JsonFormatter", "JsonLogsOptions", "make_handler"]

__getattr__ = lazy_exports(__name__, {"FIELDS": "formatter", "JsonFormatter": "formatter", "JsonLogsOptions": "options", "make_handler": "options"})
