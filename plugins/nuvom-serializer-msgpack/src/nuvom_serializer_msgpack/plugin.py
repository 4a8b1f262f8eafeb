"""Registers the ``msgpack`` serializer."""

from __future__ import annotations

from typing import Any

from nuvom_kernel import hookimpl
from nuvom_serializer_msgpack.serializer import MsgpackSerializer


def make_serializer(settings: Any, options: dict[str, Any]) -> MsgpackSerializer:
    return MsgpackSerializer()


@hookimpl
def nuvom_register_serializers(register: Any) -> None:
    register("msgpack", make_serializer, description="msgpack (bytes stay bytes; Nuvom 0.11's default)")
