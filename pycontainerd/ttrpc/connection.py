"""One accepted ttrpc connection on the server side (containerd/ttrpc serverConn).

One reader loop per connection; every request runs as its own task, so many
calls proceed at once and answers go out in completion order. When the peer goes
away, its running handlers are cancelled (Go cancels their context).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from pycontainerd.errdefs import Code
from pycontainerd.ttrpc.dispatch import Reply, ServiceTable
from pycontainerd.ttrpc.framing import (
    MESSAGE_LENGTH_MAX,
    Frame,
    MessageType,
    encode_frame,
    oversized_message,
    read_frame,
)
from pycontainerd.ttrpc.protocol import (
    DecodeError,
    ReceivedRequest,
    decode_request,
    encode_response,
)

log = logging.getLogger(__name__)


class ServerConnection:
    """One accepted connection: reads requests, runs them, writes answers."""

    def __init__(
        self,
        services: ServiceTable,
        conn: socket.socket,
        on_change: Callable[[ServerConnection], None],
    ) -> None:
        self._services = services
        self._socket = conn
        self._on_change = on_change
        self._writer: asyncio.StreamWriter | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.done = False

    @property
    def idle(self) -> bool:
        return not self._calls

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        """Close the transport; the reader loop then ends and cancels running calls."""
        self._closing = True
        if self._writer is not None:
            self._writer.close()

    async def finished(self) -> None:
        if self._task is not None:
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(sock=self._socket)
            while not self._closing:
                try:
                    frame = await read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                await self._on_frame(frame)
        except Exception:  # a bug here must not leave the peer hanging forever
            log.exception("ttrpc: connection failed")
        finally:
            await self._teardown()

    async def _on_frame(self, frame: Frame) -> None:
        if frame.oversized:
            await self._send(
                frame.stream_id, Reply(Code.RESOURCE_EXHAUSTED, oversized_message(frame.length))
            )
            return
        if frame.type != MessageType.REQUEST:
            return  # Go ignores anything but requests
        try:
            request = decode_request(frame.payload or b"")
        except DecodeError as exc:
            await self._send(
                frame.stream_id, Reply(Code.INVALID_ARGUMENT, f"unmarshal request error: {exc}")
            )
            return
        if frame.stream_id % 2 != 1:
            await self._send(
                frame.stream_id,
                Reply(Code.INVALID_ARGUMENT, "StreamID must be odd for client initiated streams"),
            )
            return
        call = asyncio.get_running_loop().create_task(self._serve(frame.stream_id, request))
        self._calls.add(call)
        call.add_done_callback(self._call_done)

    async def _serve(self, stream_id: int, request: ReceivedRequest) -> None:
        reply = await self._services.call(request)
        await self._send(stream_id, reply)

    def _call_done(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        if not call.cancelled() and call.exception() is not None:
            log.error("ttrpc: failed to answer a call", exc_info=call.exception())
        if not self._calls:
            self._on_change(self)

    async def _send(self, stream_id: int, reply: Reply) -> None:
        body = encode_response(reply.code, reply.message, reply.payload)
        if len(body) > MESSAGE_LENGTH_MAX:
            body = encode_response(Code.RESOURCE_EXHAUSTED, oversized_message(len(body)))
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        writer.write(encode_frame(stream_id, MessageType.RESPONSE, body))
        try:
            await writer.drain()
        except ConnectionError:
            self.close()

    async def _teardown(self) -> None:
        calls = list(self._calls)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        if self._writer is None:
            self._socket.close()
        else:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self.done = True
        self._on_change(self)
