"""msgpack encoding of arguments and results.

Compared with JSON: ``bytes`` stay bytes, and payloads are smaller.  As with
JSON, tuples come back as lists, map keys must be str, int, float, bool or
None, and decoding never runs code (no extension types are accepted).
"""

from __future__ import annotations

from typing import Any

import msgpack


class MsgpackSerializer:
    name = "msgpack"

    def dumps(self, value: Any) -> bytes:
        try:
            data: bytes = msgpack.packb(value, use_bin_type=True, strict_types=False)
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an int beyond 64 bits
            raise TypeError(f"msgpack cannot encode it: {exc}") from None
        return data

    def loads(self, data: bytes) -> Any:
        # ext types are refused: a payload can name no Python type to build
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_refuse_ext)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted in a Nuvom payload")
