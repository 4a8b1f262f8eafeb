"""The plugin's settings (section ``logs_json``) and the handler built from them."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from nuvom_logs_json.formatter import FIELDS, JsonFormatter

SECTION = "logs_json"
Scalar = str | int | float | bool


class JsonLogsOptions(BaseModel):
    """``NUVOM_LOGS_JSON__<KEY>``, ``[tool.nuvom.logs_json]``, ``[plugins.settings.logs_json]``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    stream: Literal["stderr", "stdout"] = "stderr"
    path: str | None = None
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None
    fields: dict[str, Scalar] = {}

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path", mode="before")
    @classmethod
    def _empty_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("fields", mode="before")
    @classmethod
    def _parse_fields(cls, value: object) -> object:
        """From the environment: a JSON object, or ``service=billing,region=eu``."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON object ({exc.msg}); write {{\"service\": \"billing\"}} "
                                 "or service=billing,region=eu") from None
        pairs: dict[str, str] = {}
        for item in text.split(","):
            key, eq, val = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"{item.strip()!r} is not KEY=VALUE; write service=billing,region=eu "
                                 "or a JSON object")
            pairs[key.strip()] = val.strip()
        return pairs

    @field_validator("fields")
    @classmethod
    def _no_clash(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        clash = sorted(set(value) & set(FIELDS))
        if clash:
            raise ValueError(f"{', '.join(clash)} is one of Nuvom's own fields; choose another name "
                             f"(Nuvom's fields: {', '.join(FIELDS)})")
        return value


def make_handler(options: JsonLogsOptions, root: Path | None = None) -> logging.Handler:
    """A handler writing JSON lines as ``options`` say: to ``path`` (appended, relative
    to ``root``) or to standard error / output."""
    handler: logging.Handler
    if options.path:
        path = Path(options.path)
        if not path.is_absolute() and root is not None:
            path = root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stdout if options.stream == "stdout" else sys.stderr)
    if options.level is not None:  # otherwise NUVOM_LOG_LEVEL alone decides
        handler.setLevel(options.level)
    handler.setFormatter(JsonFormatter(options.fields))
    return handler
