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
import math
import threading
from typing import TYPE_CHECKING, Any

from nuvom_kernel.builtin_serializers import JsonSerializer
from nuvom_kernel.contracts import Serializer
from nuvom_kernel.errors import ComponentNotFoundError, PayloadError
from nuvom_kernel.models import Job

if TYPE_CHECKING:
    from nuvom_kernel.manager import NuvomPluginManager
    from nuvom_kernel.settings import NuvomSettings

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


class PayloadCodec:
    """The app's payload checks and codec (mixed into :class:`~nuvom_kernel.app.Nuvom`):
    size and nesting limits, the stored form of arguments and results, and
    decoding what any serializer stored."""

    # set by Nuvom.__init__
    settings: NuvomSettings
    plugins: NuvomPluginManager
    component_options: Any
    _serializer: Serializer | None
    _decoders: dict[str, Serializer]
    _lock: threading.RLock

    if TYPE_CHECKING:
        @property
        def serializer(self) -> Serializer: ...  # Nuvom.serializer

    def check_payload(self, value: Any, what: str) -> None:
        """Refuse values that cannot be stored or exceed ``max_payload_bytes``."""
        serializer = self._serializer or self.serializer
        if type(serializer) is JsonSerializer and _fits_json(value, self.settings.max_payload_bytes):
            return  # small plain values: provably encodable within the limit, no need to encode
        self._encoded(serializer, value, what)

    def _encoded(self, serializer: Serializer, value: Any, what: str) -> bytes:
        """``value`` encoded by ``serializer``, refused (``PayloadError``) when it
        cannot be or exceeds ``max_payload_bytes``."""
        if _nested_deeper_than(value, MAX_NESTING):
            raise PayloadError(
                f"{what} is nested more than {MAX_NESTING} levels deep, which the job store cannot "
                "encode; flatten it or store it elsewhere and pass a reference"
            )
        try:
            data = serializer.dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise PayloadError(
                f"{what} cannot be serialised with {self.serializer.name}: {exc}; "
                "pass JSON-compatible values (str, int, float, bool, None, lists, dicts with str keys)"
            ) from None
        limit = self.settings.max_payload_bytes
        if len(data) > limit:
            raise PayloadError(
                f"{what} is {len(data)} bytes, over the limit of {limit} bytes (NUVOM_MAX_PAYLOAD_BYTES); "
                "store large data elsewhere and pass a reference"
            )
        return data

    def encode_payload(self, value: Any, what: str) -> Any:
        """The form in which ``value`` (a result) is stored: itself with the JSON
        serializer, else an envelope of the serializer's bytes.  Checked like
        :meth:`check_payload`."""
        serializer = self._serializer or self.serializer
        if type(serializer) is JsonSerializer:
            self.check_payload(value, what)
            if not is_envelope(value):
                return value
        return wrap(serializer, self._encoded(serializer, value, what))

    def _stored_call(self, job: Job) -> Job:
        """``job`` with its arguments in stored form (see :meth:`encode_payload`)."""
        what = f"arguments of task {job.task!r}"
        serializer = self._serializer or self.serializer
        call = {"args": job.args, "kwargs": job.kwargs}
        if args_envelope(job.args, job.kwargs) is not None:
            return job  # already in stored form (a job exported and submitted again)
        if type(serializer) is JsonSerializer:
            self.check_payload(call, what)
            return job
        data = self._encoded(serializer, {"args": list(job.args), "kwargs": job.kwargs}, what)
        return job.model_copy(update={"args": [wrap(serializer, data)], "kwargs": {}})

    def serializer_named(self, name: str) -> Serializer:
        """The serializer ``name`` (for decoding what another process stored)."""
        own = self._serializer or self.serializer
        if own.name == name:
            return own
        with self._lock:
            cached = self._decoders.get(name)
            if cached is None:
                try:
                    cached = self.plugins.registries["serializers"].create(name, self.settings, self.component_options)
                except ComponentNotFoundError as exc:
                    raise PayloadError(f"a stored payload was encoded with the {name!r} serializer, which is not "
                                       f"available in this process: {exc}") from None
                self._decoders[name] = cached
            return cached

    def decode_value(self, value: Any) -> Any:
        """A stored result as the task returned it (decoding an envelope)."""
        if is_envelope(value):
            return unwrap(value, self.serializer_named(value[MARK]))
        return value

    def decode_call(self, job: Job) -> tuple[list[Any], dict[str, Any]]:
        """A stored job's ``(args, kwargs)`` as the caller passed them."""
        envelope = args_envelope(job.args, job.kwargs)
        if envelope is None:
            return job.args, job.kwargs
        name = envelope[MARK]
        return call_from(unwrap(envelope, self.serializer_named(name)), name)


#: Deepest nesting of lists/dicts accepted in arguments and results: the job
#: store encodes a job (itself a few levels) with a serializer that stops at 255.
MAX_NESTING = 100


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """True if ``value`` has lists/tuples/dicts nested more than ``limit`` deep
    (iterative: a hostile value cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is list or kind is tuple or kind is dict:
            if depth >= limit:
                return True
            children = item.values() if kind is dict else item
            stack.extend((child, depth + 1) for child in children
                         if type(child) is list or type(child) is tuple or type(child) is dict)
    return False


def _fits_json(value: Any, budget: int, depth: int = 0) -> bool:
    """True if the JSON serializer surely encodes ``value`` in at most ``budget``
    bytes: None, bools, modest ints, finite floats, ASCII strings (6 bytes per
    character covers any escape), and lists/tuples/str-keyed dicts of them.
    False means "not sure": the caller encodes the value to find out."""
    return _json_bound(value, budget, depth) >= 0


def _json_bound(value: Any, budget: int, depth: int) -> int:
    """``budget`` minus an upper bound of ``value``'s encoded size; < 0 if unknown or over."""
    kind = type(value)
    if value is None or kind is bool:
        return budget - 5
    if kind is int:
        return budget - 21 if -10**18 < value < 10**18 else -1
    if kind is float:
        return budget - 25 if math.isfinite(value) else -1
    if kind is str:
        return budget - 6 * len(value) - 2 if value.isascii() else -1
    if depth >= 8:
        return -1
    if kind is list or kind is tuple:
        budget -= 2
        for item in value:
            budget = _json_bound(item, budget - 1, depth + 1)
            if budget < 0:
                return -1
        return budget
    if kind is dict:
        budget -= 2
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return -1
            budget = _json_bound(item, budget - 6 * len(key) - 4, depth + 1)
            if budget < 0:
                return -1
        return budget
    return -1
