"""Type URLs of event payloads, as containerd's typeurl package names them.

containerd packs events into `google.protobuf.Any` with the bare message name
as the type URL (e.g. "containerd.events.ContainerCreate"), not the
"type.googleapis.com/" form protobuf uses by default.
"""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import Message

_TYPES: dict[str, type[Message]] = {}


def register(*message_classes: type[Message]) -> None:
    for cls in message_classes:
        _TYPES[cls.DESCRIPTOR.full_name] = cls


def type_url(message: Message) -> str:
    return message.DESCRIPTOR.full_name


def pack(message: Message) -> any_pb2.Any:
    return any_pb2.Any(type_url=type_url(message), value=message.SerializeToString())


def unpack(value: any_pb2.Any) -> Message | None:
    """Decode a known payload; None for a type we do not know."""
    name = value.type_url.rsplit("/", 1)[-1]
    cls = _TYPES.get(name)
    if cls is None:
        return None
    message = cls()
    message.ParseFromString(value.value)
    return message


def _register_events() -> None:
    from pycontainerd.api.events import (
        container_pb2,
        content_pb2,
        image_pb2,
        namespace_pb2,
        snapshot_pb2,
        task_pb2,
    )

    for module in (container_pb2, content_pb2, image_pb2, namespace_pb2, snapshot_pb2, task_pb2):
        register(*(getattr(module, name) for name in module.DESCRIPTOR.message_types_by_name))


_register_events()
