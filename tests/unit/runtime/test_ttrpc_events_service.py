"""Events forwarded by shims over ttrpc reach the exchange unchanged."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.services.ttrpc.events.v1 import events_pb2
from pycontainerd.events import typeurl
from pycontainerd.events.exchange import Exchange
from pycontainerd.services.ttrpc_events import EVENTS_SERVICE, TtrpcEventsService
from pycontainerd.ttrpc import ServiceStub, TtrpcClient, TtrpcServer


def test_forward_republishes_the_envelope(run) -> None:
    async def scenario() -> None:
        exchange = Exchange()
        received: list = []

        async def collect() -> None:
            async for envelope in exchange.subscribe(['topic~="/tasks/"']):
                received.append(envelope)

        collector = asyncio.get_running_loop().create_task(collect())
        await asyncio.sleep(0)
        with tempfile.TemporaryDirectory(prefix="ev-") as directory:
            address = str(Path(directory) / "t.sock")
            server = TtrpcServer()
            TtrpcEventsService(exchange).register(server)
            await server.serve_unix(address)
            async with await TtrpcClient.connect(address) as client:
                stub = ServiceStub(client, EVENTS_SERVICE)
                exit_event = events.TaskExit(container_id="c1", id="c1", exit_status=3)
                envelope = events_pb2.Envelope(
                    namespace="ns1", topic="/tasks/exit", event=typeurl.pack(exit_event)
                )
                envelope.timestamp.FromSeconds(1_700_000_000)
                await stub.Forward(events_pb2.ForwardRequest(envelope=envelope))
                bad = events_pb2.Envelope(namespace="ns1", topic="no-slash")
                with pytest.raises(errdefs.InvalidArgument):
                    await stub.Forward(events_pb2.ForwardRequest(envelope=bad))
            await server.close()
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
        collector.cancel()
        (got,) = received
        assert (got.namespace, got.topic) == ("ns1", "/tasks/exit")
        assert got.timestamp.seconds == 1_700_000_000
        assert typeurl.unpack(got.event) == exit_event

    run(scenario())
