"""Arguments and results stored through the selected serializer.

With the default JSON serializer, arguments and results are stored as they
are: every store keeps JSON, and the CLI shows them as written.  With another
serializer (``NUVOM_SERIALIZATION_BACKEND=msgpack``), the value is encoded by
it and stored inside a small JSON envelope naming the serializer::

    {"$nuvom_payload": "msgpack", "data": "<base64 of the encoded bytes>"}

A job's arguments become one envelope holding ``{"args": [...], "kwargs":
{...}}``; a result becomes one envelope.  Whoever reads it (the worker, a
``handle.result()``, the CLI) decodes it with the serializer the envelope
names, whatever its own setting is, so producers and workers may differ.
Stores never see anything but JSON.  A JSON value that happens to look like
an envelope is wrapped too, so it comes back as written.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from nuvom_kernel.contracts import Serializer
from nuvom_kernel.errors import PayloadError

MARK = "$nuvom_payload"


def is_envelope(value: Any) -> bool:
    """True for ``{"$nuvom_payload": name, "data": str}`` (cheap: checked per job)."""
    return type(value) is dict and len(value) == 2 and MARK in value and "data" in value


def wrap(serializer: Serializer, data: bytes) -> dict[str, str]:
    return {MARK: serializer.name, "data": base64.b64encode(data).decode("ascii")}


def unwrap(envelope: dict[str, Any], serializer: Serializer) -> Any:
    """The value inside ``envelope``, decoded by ``serializer`` (the one it names)."""
    try:
        data = base64.b64decode(envelope["data"], validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise PayloadError(f"a stored {envelope.get(MARK)!r} payload is damaged (not base64: {exc})") from None
    try:
        return serializer.loads(data)
    except Exception as exc:  # a serializer's own error types vary
        raise PayloadError(
            f"a stored {envelope.get(MARK)!r} payload could not be decoded: {type(exc).__name__}: {exc}") from None


def args_envelope(job_args: list[Any], job_kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The envelope when a job's arguments are stored encoded, else None."""
    if len(job_args) == 1 and not job_kwargs and is_envelope(job_args[0]):
        return job_args[0]  # type: ignore[no-any-return]
    return None


def call_from(decoded: Any, serializer_name: str) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` from a decoded arguments envelope."""
    if not (isinstance(decoded, dict) and isinstance(decoded.get("args"), list | tuple)
            and isinstance(decoded.get("kwargs"), dict)):
        raise PayloadError(f"a stored {serializer_name!r} arguments payload does not hold args and kwargs")
    return list(decoded["args"]), dict(decoded["kwargs"])


__all__ = ["MARK", "args_envelope", "call_from", "is_envelope", "unwrap", "wrap"]
