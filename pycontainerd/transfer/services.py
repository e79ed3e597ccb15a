"""The Streaming and Transfer gRPC services (containerd 2), thin adapters over .streams and .transfer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from google.protobuf import any_pb2, empty_pb2

from pycontainerd import errdefs, plugin
from pycontainerd.api.services.streaming.v1 import streaming_pb2
from pycontainerd.api.services.transfer.v1 import transfer_pb2
from pycontainerd.config import number_setting
from pycontainerd.distribution.coordination import (
    DEFAULT_MAX_CONCURRENT_UNPACKS,
    coordination_for,
)
from pycontainerd.events.exchange import Exchange
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.services.base import namespace_of, rpc
from pycontainerd.transfer.streams import StreamManager, pack, unpack
from pycontainerd.transfer.transfer import Transferrer

STREAMING_PLUGIN = "io.containerd.streaming.v1"
TRANSFER_PLUGIN = "io.containerd.transfer.v1"


class StreamingService:
    def __init__(self, manager: StreamManager) -> None:
        self.manager = manager

    @rpc
    async def Stream(  # noqa: N802
        self, request_iterator: AsyncIterator[any_pb2.Any], context: ServicerContext
    ):
        namespace = namespace_of(context)
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise errdefs.InvalidArgument("a stream starts with a StreamInit message")
        init = unpack(first, streaming_pb2.StreamInit())
        stream = self.manager.register(namespace, init.id)

        async def deliver() -> None:
            try:
                async for message in request_iterator:
                    stream.deliver(message)
            finally:
                stream.deliver(None)

        reader = asyncio.ensure_future(deliver())
        try:
            yield pack(empty_pb2.Empty())  # registered: the client may now name it
            async for message in stream.outgoing():
                yield message
        finally:
            self.manager.unregister(stream)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def register(self, server: Server) -> None:
        server.add_service(streaming_pb2.DESCRIPTOR.services_by_name["Streaming"], self)


class TransferService:
    def __init__(self, transferrer: Transferrer) -> None:
        self.transferrer = transferrer

    @rpc
    async def Transfer(  # noqa: N802
        self, request: transfer_pb2.TransferRequest, context: ServicerContext
    ):
        await self.transferrer.transfer(
            namespace_of(context),
            request.source,
            request.destination,
            progress_stream=request.options.progress_stream,
        )
        return empty_pb2.Empty()

    def register(self, server: Server) -> None:
        server.add_service(transfer_pb2.DESCRIPTOR.services_by_name["Transfer"], self)


@plugin.register(STREAMING_PLUGIN, "manager")
def init_stream_manager(ic: plugin.InitContext) -> StreamManager:
    return StreamManager()


@plugin.register(
    TRANSFER_PLUGIN,
    "local",
    requires=(plugin.METADATA, plugin.DIFF, plugin.EVENT, plugin.GC, STREAMING_PLUGIN),
    config={"differs": ["walking"], "max_concurrent_unpacks": DEFAULT_MAX_CONCURRENT_UNPACKS},
)
def init_transferrer(ic: plugin.InitContext) -> Transferrer:
    """``max_concurrent_unpacks`` (containerd 2's key): layers extracted at once, for every
    pull in the daemon (CRI's too); 1 unpacks strictly in order (see distribution.unpack)."""
    metadata: MetadataStore = ic.get(plugin.METADATA)
    unpacks = number_setting(
        f"{TRANSFER_PLUGIN}.local", ic.config, "max_concurrent_unpacks", minimum=1, maximum=64
    )
    coordination_for(metadata).max_concurrent_unpacks = int(unpacks)
    differs = [ic.get(plugin.DIFF, name) for name in ic.config["differs"]]
    exchange: Exchange = ic.get(plugin.EVENT)
    gc: GCScheduler = ic.get(plugin.GC)
    streams: StreamManager = ic.get(STREAMING_PLUGIN)
    return Transferrer(
        metadata, differs, streams, exchange=exchange, gc=gc, spool_dir=ic.root / "spool"
    )


@plugin.register(plugin.GRPC, "streaming", requires=(STREAMING_PLUGIN,))
def init_streaming(ic: plugin.InitContext) -> StreamingService:
    return StreamingService(ic.get(STREAMING_PLUGIN))


@plugin.register(plugin.GRPC, "transfer", requires=(TRANSFER_PLUGIN,))
def init_transfer(ic: plugin.InitContext) -> TransferService:
    return TransferService(ic.get(TRANSFER_PLUGIN))
