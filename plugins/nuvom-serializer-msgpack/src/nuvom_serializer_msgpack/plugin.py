"""Registers the ``msgpack`` serializer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuvom_kernel import hookimpl

if TYPE_CHECKING:  # msgpack is imported when the serializer is made, not when the plugin loads
    from nuvom_serializer_msgpack.serializer import MsgpackSerializer


def make_serializer(settings: Any, options: dict[str, Any]) -> MsgpackSerializer:
    from nuvom_serializer_msgpack.serializer import MsgpackSerializer

    return MsgpackSerializer()


@hookimpl
def nuvom_register_serializers(register: Any) -> None:
    register("msgpack", make_serializer, description="msgpack (bytes stay bytes; Nuvom 0.11's default)")
