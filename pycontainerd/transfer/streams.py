"""Named streams (containerd 2's streaming manager) and the byte streams carried on them.

A client opens a stream with the Streaming service, names it in its first
message, and refers to it by that name in a later call (a Transfer's progress,
credentials or archive stream). The manager keeps each open stream per
namespace until its Streaming call ends; the call that uses it looks it up.

Byte streams use containerd's flow control: the receiver grants the sender
bytes with ``WindowUpdate`` messages, the sender sends ``Data`` messages within
what it was granted, and the sending side ends the stream when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import IO, TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import Message

from pycontainerd import errdefs
from pycontainerd.api.types.transfer import streaming_pb2

#: Bytes one Data message carries at most, and the window a receiver grants (containerd's).
MAX_DATA = 32 * 1024
WINDOW = 2 * MAX_DATA
M = TypeVar("M", bound=Message)


def type_name(message: any_pb2.Any) -> str:
    """The full protobuf name an Any carries (containerd sends it without a URL prefix)."""
    return message.type_url.rsplit("/", 1)[-1]


def pack(message: Message) -> any_pb2.Any:
    """An Any as containerd's typeurl writes it: the bare full name as the type URL."""
    return any_pb2.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())


def unpack(message: any_pb2.Any, into: M) -> M:
    """Decode ``message`` into ``into``; InvalidArgument when it holds another type."""
    if type_name(message) != into.DESCRIPTOR.full_name:
        raise errdefs.InvalidArgument(
            f"expected a {into.DESCRIPTOR.full_name} message, got {type_name(message)!r}"
        )
    into.ParseFromString(message.value)
    return into


class StreamClosed(errdefs.Unavailable):
    """The other side ended the stream (or its Streaming call went away)."""


class Stream:
    """One named stream: messages from the client, messages to it, and its end."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self._inbound: asyncio.Queue[any_pb2.Any | None] = asyncio.Queue()
        self._outbound: asyncio.Queue[any_pb2.Any | None] = asyncio.Queue()
        self._closed = False
        self._received_end = False
        self._drained = asyncio.Event()  # everything sent has been handed to the call

    # -- for the user of the stream ---------------------------------------------------------

    def send_nowait(self, message: Message) -> None:
        if self._closed:
            raise StreamClosed(f"stream {self.name!r} is closed")
        self._outbound.put_nowait(pack(message))

    async def send(self, message: Message) -> None:
        self.send_nowait(message)

    async def recv(self) -> any_pb2.Any:
        """The client's next message; StreamClosed once it stopped sending."""
        if self._received_end:
            raise StreamClosed(f"stream {self.name!r}: the client closed it")
        item = await self._inbound.get()
        if item is None:
            self._received_end = True
            raise StreamClosed(f"stream {self.name!r}: the client closed it")
        return item

    def close(self) -> None:
        """End the stream from our side, after what was sent so far."""
        if not self._closed:
            self._closed = True
            self._outbound.put_nowait(None)

    # -- for the Streaming call that carries it ---------------------------------------------

    def deliver(self, message: any_pb2.Any | None) -> None:
        """A message from the client (None: it closed its side)."""
        self._inbound.put_nowait(message)

    async def outgoing(self) -> AsyncIterator[any_pb2.Any]:
        """What to send to the client, until :meth:`close`."""
        try:
            while (item := await self._outbound.get()) is not None:
                yield item
        finally:
            self._drained.set()

    async def drained(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until the call has sent what was queued."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)

    def ended(self) -> None:
        """The Streaming call is over: nothing more comes in or goes out."""
        self._closed = True
        self._drained.set()
        self._inbound.put_nowait(None)


class StreamManager:
    """Open streams by namespace and name."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], Stream] = {}

    def register(self, namespace: str, name: str) -> Stream:
        if not name:
            raise errdefs.InvalidArgument("a stream needs a non-empty id in its StreamInit")
        if (namespace, name) in self._streams:
            raise errdefs.AlreadyExists(f"stream {errdefs.echo(name)} already exists")
        stream = self._streams[namespace, name] = Stream(namespace, name)
        return stream

    def unregister(self, stream: Stream) -> None:
        if self._streams.get((stream.namespace, stream.name)) is stream:
            del self._streams[stream.namespace, stream.name]
        stream.ended()

    def get(self, namespace: str, name: str) -> Stream:
        stream = self._streams.get((namespace, name))
        if stream is None:
            raise errdefs.NotFound(f"stream {errdefs.echo(name)} not found in {namespace!r}")
        return stream


# -- byte streams ----------------------------------------------------------------------------


async def receive_bytes(stream: Stream, out: IO[bytes]) -> int:
    """Write what the client sends on ``stream`` into ``out`` until it ends; returns the count.

    As containerd's ReceiveStream: a window is granted before each read while
    less than WINDOW is outstanding.
    """
    window = 0
    received = 0
    while True:
        if window < WINDOW:
            with contextlib.suppress(StreamClosed):
                stream.send_nowait(streaming_pb2.WindowUpdate(update=WINDOW))
                window += WINDOW
        try:
            message = await stream.recv()
        except StreamClosed:
            return received
        if type_name(message) != streaming_pb2.Data.DESCRIPTOR.full_name:
            continue  # containerd ignores what it does not know
        data = unpack(message, streaming_pb2.Data()).data
        await asyncio.get_running_loop().run_in_executor(None, out.write, data)
        window -= len(data)
        received += len(data)


async def send_bytes(stream: Stream, source: IO[bytes]) -> int:
    """Send ``source`` to the client within the windows it grants, then end the stream.

    Raises StreamClosed when the client went away before taking everything.
    """
    granted = asyncio.Queue[int]()

    async def read_windows() -> None:
        with contextlib.suppress(StreamClosed):
            while True:
                message = await stream.recv()
                if type_name(message) == streaming_pb2.WindowUpdate.DESCRIPTOR.full_name:
                    update = unpack(message, streaming_pb2.WindowUpdate())
                    granted.put_nowait(update.update)
        granted.put_nowait(-1)

    reader = asyncio.ensure_future(read_windows())
    loop = asyncio.get_running_loop()
    sent = 0
    remaining = 0
    gone = False
    try:
        while True:
            while not gone and (not granted.empty() or remaining <= 0):
                update = granted.get_nowait() if not granted.empty() else await granted.get()
                if update < 0:
                    gone = True  # no more windows will come; use what is left
                else:
                    remaining += update
            if remaining <= 0:
                raise StreamClosed(
                    f"stream {stream.name!r}: the client went away after {sent} bytes"
                )
            chunk = await loop.run_in_executor(None, source.read, min(MAX_DATA, remaining))
            if not chunk:
                return sent
            stream.send_nowait(streaming_pb2.Data(data=chunk))
            remaining -= len(chunk)
            sent += len(chunk)
    finally:
        stream.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
