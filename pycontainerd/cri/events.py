"""The CRI container event stream (GetContainerEvents, kubelet's evented PLEG)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri

QUEUE_SIZE = 1024


class EventHub:
    """Fans each event out to every subscriber; a subscriber that falls behind loses events."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[cri.ContainerEventResponse]] = set()

    def publish(self, event: cri.ContainerEventResponse) -> None:
        for queue in self._queues:
            if not queue.full():
                queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[cri.ContainerEventResponse]:
        queue: asyncio.Queue[cri.ContainerEventResponse] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)
