"""The events service: publish, forward and subscribe."""

from __future__ import annotations

from google.protobuf import empty_pb2

from pycontainerd import errdefs, filters, plugin
from pycontainerd.api.services.events.v1 import events_pb2 as api
from pycontainerd.events.exchange import Exchange, validate_topic
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.identifiers import validate_identifier
from pycontainerd.services.base import namespace_of, rpc


class EventsService:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    @rpc
    async def Publish(self, request: api.PublishRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        validate_topic(request.topic)
        if not request.event.type_url:
            raise errdefs.InvalidArgument("an event needs a payload with a type URL")
        envelope = api.Envelope(namespace=namespace, topic=request.topic, event=request.event)
        self.exchange.forward(envelope)
        return empty_pb2.Empty()

    @rpc
    async def Forward(self, request: api.ForwardRequest, context: ServicerContext):  # noqa: N802
        envelope = request.envelope
        validate_identifier(envelope.namespace, "namespace")
        validate_topic(envelope.topic)
        self.exchange.forward(envelope)
        return empty_pb2.Empty()

    @rpc
    async def Subscribe(self, request: api.SubscribeRequest, context: ServicerContext):  # noqa: N802
        match = await filters.parse_all_off_loop(request.filters)  # refused before streaming
        async for envelope in self.exchange.subscribe(match=match):
            yield envelope

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Events"], self)


@plugin.register(plugin.GRPC, "events", requires=(plugin.EVENT,))
def init_events(ic: plugin.InitContext) -> EventsService:
    return EventsService(ic.get(plugin.EVENT))
