"""Fan-out of events to subscribers, with containerd's topic rules and filters."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from pycontainerd import errdefs, filters, timestamps
from pycontainerd.api.services.events.v1 import events_pb2
from pycontainerd.events import typeurl
from pycontainerd.identifiers import validate_identifier

log = logging.getLogger(__name__)

# A subscriber that falls this far behind loses events (and is told so in the log)
# rather than growing the daemon's memory without bound.
SUBSCRIBER_QUEUE_LIMIT = 4096
_TOPIC_COMPONENT = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


def validate_topic(topic: str) -> str:
    if not topic or not topic.startswith("/"):
        raise errdefs.InvalidArgument(f"event topic {topic!r} must start with '/'")
    for part in topic[1:].split("/"):
        if not _TOPIC_COMPONENT.fullmatch(part):
            raise errdefs.InvalidArgument(
                f"event topic {topic!r} has an invalid component {part!r}"
            )
    return topic


def _envelope_adaptor(envelope: events_pb2.Envelope) -> filters.Adaptor:
    def field(path: Sequence[str]) -> tuple[str, bool]:
        if not path:
            return "", False
        if path == ["namespace"]:
            return envelope.namespace, bool(envelope.namespace)
        if path == ["topic"]:
            return envelope.topic, bool(envelope.topic)
        if path[0] == "event":
            return _message_field(typeurl.unpack(envelope.event), path[1:])
        return "", False

    return field


def _message_field(message: Message | None, path: Sequence[str]) -> tuple[str, bool]:
    value: object = message
    for part in path:
        if isinstance(value, Message):
            fields = {f.name: f for f in value.DESCRIPTOR.fields}
            if part not in fields:
                return "", False
            value = getattr(value, part)
        elif hasattr(value, "get"):  # a map field (labels)
            if part not in value:  # type: ignore[operator]
                return "", False
            value = value[part]  # type: ignore[index]
        else:
            return "", False
    if value is None or isinstance(value, Message):
        return "", False
    text = str(value)
    return text, text != ""


@dataclass
class _Subscriber:
    queue: asyncio.Queue[events_pb2.Envelope]
    filter: filters.Filter


class Exchange:
    """Events published here reach every matching subscriber, in order."""

    def __init__(self) -> None:
        self._subscribers: list[_Subscriber] = []

    def publish(self, namespace: str, topic: str, event: Message) -> None:
        validate_identifier(namespace, "namespace")
        validate_topic(topic)
        envelope = events_pb2.Envelope(namespace=namespace, topic=topic, event=typeurl.pack(event))
        envelope.timestamp.CopyFrom(timestamps.now())
        self.forward(envelope)

    def forward(self, envelope: events_pb2.Envelope) -> None:
        """Deliver an envelope as is (from a shim or another publisher)."""
        validate_identifier(envelope.namespace, "namespace")
        validate_topic(envelope.topic)
        if not envelope.HasField("timestamp"):
            envelope.timestamp.CopyFrom(timestamps.now())
        for sub in list(self._subscribers):
            if not sub.filter.match(_envelope_adaptor(envelope)):
                continue
            try:
                sub.queue.put_nowait(envelope)
            except asyncio.QueueFull:
                log.warning("event subscriber is too slow; dropped %s", envelope.topic)

    async def subscribe(
        self, filter_strs: list[str] | None = None, *, match: filters.Filter | None = None
    ) -> AsyncIterator[events_pb2.Envelope]:
        """Events matching `filter_strs`, or the already parsed `match`."""
        if match is None:
            match = filters.parse_all(filter_strs or [])
        sub = _Subscriber(asyncio.Queue(SUBSCRIBER_QUEUE_LIMIT), match)
        self._subscribers.append(sub)
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self._subscribers.remove(sub)
