"""Events: subscribe to what happens in the daemon, publish your own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from google.protobuf.message import Message

from pycontainerd.api.services.events.v1 import events_pb2 as api
from pycontainerd.api.services.events.v1 import events_pb2_grpc
from pycontainerd.client.models import Envelope, from_timestamp
from pycontainerd.client.rpc import Connection
from pycontainerd.events import typeurl


def _from_api(envelope: api.Envelope) -> Envelope:
    return Envelope(
        timestamp=from_timestamp(envelope.timestamp),
        namespace=envelope.namespace,
        topic=envelope.topic,
        type_url=envelope.event.type_url,
        event=typeurl.unpack(envelope.event),
    )


class EventsService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = events_pb2_grpc.EventsStub(connection.channel)

    async def subscribe(self, filters: Iterable[str] = ()) -> AsyncIterator[Envelope]:
        """Events from now on, matching any of ``filters`` (e.g. ``topic~="/images/"``).

        Events of every namespace arrive; filter on ``namespace==...`` to narrow.
        """
        request = api.SubscribeRequest(filters=list(filters))
        async for envelope in self._conn.server_stream(self._stub.Subscribe, request):
            yield _from_api(envelope)

    async def publish(self, topic: str, event: Message) -> None:
        request = api.PublishRequest(topic=topic, event=typeurl.pack(event))
        await self._conn.unary(self._stub.Publish, request)
