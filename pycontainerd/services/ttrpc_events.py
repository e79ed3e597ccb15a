"""The ttrpc Events service shims forward their task events to.

Shims connect to ``<grpc address>.ttrpc`` (the TTRPC_ADDRESS they are started
with) and call ``containerd.services.events.ttrpc.v1.Events/Forward``; each
envelope is republished on the exchange as is, so ``ctr events`` sees it.
"""

from __future__ import annotations

from google.protobuf import empty_pb2

from pycontainerd import plugin
from pycontainerd.api.services.events.v1 import events_pb2 as grpc_events
from pycontainerd.api.services.ttrpc.events.v1 import events_pb2 as ttrpc_events
from pycontainerd.events.exchange import Exchange
from pycontainerd.ttrpc import RequestContext, TtrpcServer, register_service

EVENTS_SERVICE = ttrpc_events.DESCRIPTOR.services_by_name["Events"]


class TtrpcEventsService:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    async def Forward(  # noqa: N802 - the method name is the wire name
        self, request: ttrpc_events.ForwardRequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        received = request.envelope
        envelope = grpc_events.Envelope(
            namespace=received.namespace, topic=received.topic, event=received.event
        )
        if received.HasField("timestamp"):
            envelope.timestamp.CopyFrom(received.timestamp)
        self.exchange.forward(envelope)  # validates namespace and topic
        return empty_pb2.Empty()

    def register(self, server: TtrpcServer) -> None:
        register_service(server, EVENTS_SERVICE, self)


@plugin.register(plugin.TTRPC, "events", requires=(plugin.EVENT,))
def init_ttrpc_events(ic: plugin.InitContext) -> TtrpcEventsService:
    return TtrpcEventsService(ic.get(plugin.EVENT))
