"""The msgpack serializer for Nuvom (``NUVOM_SERIALIZATION_BACKEND=msgpack``)."""

from nuvom_serializer_msgpack.serializer import MsgpackSerializer

__all__ = ["MsgpackSerializer"]
