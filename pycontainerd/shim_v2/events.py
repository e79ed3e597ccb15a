"""Forward task events to the daemon: ttrpc ``Events/Forward`` on TTRPC_ADDRESS.

containerd 1.6 shims publish this way (not through the publish binary). Events
are queued and sent in order by one task; a failed send is retried a few times
with growing pauses, then dropped with a log line, so a daemon that is away for a
moment (restart, kill -9) loses nothing it cannot recover from `State`/`Wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from google.protobuf import any_pb2, empty_pb2, timestamp_pb2
from google.protobuf.message import Message

from pycontainerd import errdefs
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.services.ttrpc.events.v1 import events_pb2
from pycontainerd.ttrpc import TtrpcClient

log = logging.getLogger(__name__)

EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"
SEND_TIMEOUT = 5.0
MAX_ATTEMPTS = 5
QUEUE_SIZE = 2048

#: Topic of each task event, as containerd names them.
TOPICS: dict[type[Message], str] = {
    events.TaskCreate: "/tasks/create",
    events.TaskStart: "/tasks/start",
    events.TaskExit: "/tasks/exit",
    events.TaskDelete: "/tasks/delete",
    events.TaskExecAdded: "/tasks/exec-added",
    events.TaskExecStarted: "/tasks/exec-started",
    events.TaskPaused: "/tasks/paused",
    events.TaskResumed: "/tasks/resumed",
    events.TaskOOM: "/tasks/oom",
    events.TaskCheckpointed: "/tasks/checkpointed",
}


def timestamp_now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp


def envelope(namespace: str, event: Message) -> events_pb2.Envelope:
    """The envelope containerd expects: namespace, topic and the event as a bare-named Any."""
    topic = TOPICS.get(type(event))
    if topic is None:
        raise errdefs.InvalidArgument(f"no topic for event {event.DESCRIPTOR.full_name}")
    return events_pb2.Envelope(
        timestamp=timestamp_now(),
        namespace=namespace,
        topic=topic,
        event=any_pb2.Any(type_url=event.DESCRIPTOR.full_name, value=event.SerializeToString()),
    )


class EventPublisher:
    """Queues events and forwards them to the daemon's ttrpc address, in order."""

    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._queue: asyncio.Queue[events_pb2.Envelope | None] = asyncio.Queue(QUEUE_SIZE)
        self._client: TtrpcClient | None = None
        self._sender: asyncio.Task[None] | None = None

    def publish(self, event: Message) -> None:
        """Queue `event`; never blocks (a full queue drops the event with a warning)."""
        if not self.address:
            return
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_all())
        try:
            self._queue.put_nowait(envelope(self.namespace, event))
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s", event.DESCRIPTOR.full_name)

    async def close(self, timeout: float = SEND_TIMEOUT) -> None:
        """Send what is queued (for at most `timeout` seconds), then disconnect."""
        if self._sender is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
            done, _ = await asyncio.wait([self._sender], timeout=timeout)
            if not done:
                self._sender.cancel()
        if self._client is not None:
            self._client.close()

    async def _send_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            await self._send(item)

    async def _send(self, item: events_pb2.Envelope) -> None:
        request = events_pb2.ForwardRequest(envelope=item)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                client = await self._connect()
                await client.call(
                    EVENTS_SERVICE,
                    "Forward",
                    request,
                    empty_pb2.Empty,
                    timeout=SEND_TIMEOUT,
                )
                return
            except errdefs.ContainerdError as exc:
                if isinstance(exc, errdefs.Unavailable) and self._client is not None:
                    self._client.close()
                    self._client = None
                log.warning("forwarding %s failed (attempt %d): %s", item.topic, attempt, exc)
                await asyncio.sleep(min(attempt * 0.5, 2.0))
        log.error("dropping event %s after %d attempts", item.topic, MAX_ATTEMPTS)

    async def _connect(self) -> TtrpcClient:
        if self._client is None or self._client.closed:
            self._client = await TtrpcClient.connect(self.address, timeout=SEND_TIMEOUT)
        return self._client
