"""The msgpack serializer for Nuvom (``NUVOM_SERIALIZATION_BACKEND=msgpack``)."""

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_serializer_msgpack.serializer import MsgpackSerializer

__all__ = ["MsgpackSerializer"]

__getattr__ = lazy_exports(__name__, {"MsgpackSerializer": "serializer"})
