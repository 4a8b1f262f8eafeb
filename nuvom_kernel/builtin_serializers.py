"""The JSON serializer, registered by the kernel itself as plugin ``nuvom-kernel``.

It is the one component the kernel ships: payload checks need a serializer
even when no plugin is installed.  It never executes code while decoding.
"""

from __future__ import annotations

import json
from typing import Any

from nuvom_kernel.hookspecs import hookimpl


class JsonSerializer:
    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


def _make_json(settings: Any, options: dict[str, Any]) -> JsonSerializer:
    return JsonSerializer()


@hookimpl
def nuvom_register_serializers(register: Any) -> None:
    register("json", _make_json, description="JSON (the default); tuples come back as lists")
