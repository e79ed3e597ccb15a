"""asyncio ttrpc client, wire-compatible with containerd/ttrpc 1.1 (client.go).

One connection carries any number of concurrent calls: each gets the next odd
stream id and waits for the response with that id, which a single reader task
hands out. When the peer goes away, every pending and later call fails with
UNAVAILABLE ("ttrpc: closed", the text Go's ErrClosed carries).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from pycontainerd.errdefs import Code, DeadlineExceeded, ResourceExhausted, Unavailable
from pycontainerd.ttrpc.address import socket_path
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
    MetadataArg,
    ReceivedResponse,
    decode_response,
    encode_request,
)
from pycontainerd.ttrpc.status import DEADLINE_MESSAGE, closed_error, error_from_status

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

_STREAM_ID_LIMIT = 1 << 32


class TtrpcClient:
    """A ttrpc connection; create it with ``connect`` or ``from_socket``.

    ``on_close`` runs once when the connection ends, whoever ended it (the way
    containerd notices a shim that died).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_close = on_close
        self._pending: dict[int, asyncio.Future[ReceivedResponse]] = {}
        self._next_stream_id = 1
        self._closed = False
        self._receiver = asyncio.get_running_loop().create_task(self._receive())

    @classmethod
    async def connect(
        cls,
        address: str,
        *,
        timeout: float | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> TtrpcClient:
        """Connect to ``unix:///path``, a plain path, or ``@abstract``.

        Raises Unavailable when nothing listens there (or not within ``timeout``).
        """
        path = socket_path(address)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except (OSError, TimeoutError) as exc:
            raise Unavailable(f"ttrpc: cannot connect to {address}: {exc or 'timed out'}") from exc
        return cls(reader, writer, on_close)

    @classmethod
    async def from_socket(
        cls, sock: socket.socket, *, on_close: Callable[[], None] | None = None
    ) -> TtrpcClient:
        """Use an already connected Unix stream socket."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer, on_close)

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[M],
        *,
        timeout: float | None = None,
        metadata: MetadataArg | None = None,
    ) -> M:
        """Call ``service``/``method`` and return the parsed response.

        ``timeout`` (seconds) is also sent to the server as the call's deadline.
        Errors from the server are raised as the errdefs kind of their status code;
        a timeout raises DeadlineExceeded, a lost connection Unavailable.
        """
        if self._closed:
            raise closed_error()
        timeout_nano = 0 if timeout is None else max(int(timeout * 1e9), 1)
        body = encode_request(service, method, request.SerializeToString(), timeout_nano, metadata)
        if len(body) > MESSAGE_LENGTH_MAX:
            raise ResourceExhausted(oversized_message(len(body)))

        stream_id = self._take_stream_id()
        waiter: asyncio.Future[ReceivedResponse] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = waiter
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(encode_frame(stream_id, MessageType.REQUEST, body))
                await self._writer.drain()
                response = await waiter
        except TimeoutError:
            raise DeadlineExceeded(DEADLINE_MESSAGE) from None
        except ConnectionError as exc:
            self._fail_all()
            raise closed_error() from exc
        finally:
            self._pending.pop(stream_id, None)

        if response.code != 0:
            raise error_from_status(response.code, response.message)
        try:
            return response_type.FromString(response.payload)
        except DecodeError as exc:
            raise error_from_status(
                Code.INTERNAL,
                f"ttrpc: {service}/{method} answered with a payload that is not a "
                f"{response_type.DESCRIPTOR.full_name}: {exc}",
            ) from exc

    def close(self) -> None:
        """Close the connection; pending calls fail with Unavailable."""
        self._fail_all()
        self._receiver.cancel()

    async def wait_closed(self) -> None:
        """Wait until the connection is fully torn down (after ``close`` or peer loss)."""
        await asyncio.wait([self._receiver])

    async def __aenter__(self) -> TtrpcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def _take_stream_id(self) -> int:
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        if self._next_stream_id >= _STREAM_ID_LIMIT:
            self._next_stream_id = 1
        return stream_id

    async def _receive(self) -> None:
        try:
            while True:
                frame = await read_frame(self._reader)
                self._deliver(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # a bug here must not leave callers waiting forever
            log.exception("ttrpc: client receive loop failed")
        finally:
            self._fail_all()
            self._writer.close()
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                try:
                    on_close()
                except Exception:  # the callback's failure is not the connection's
                    log.exception("ttrpc: on_close callback failed")

    def _deliver(self, frame: Frame) -> None:
        waiter = self._pending.get(frame.stream_id)
        if waiter is None or waiter.done():
            log.debug("ttrpc: dropping message for stream %d with no caller", frame.stream_id)
            return
        if frame.oversized:
            waiter.set_exception(ResourceExhausted(oversized_message(frame.length)))
        elif frame.type != MessageType.RESPONSE:
            waiter.set_exception(
                error_from_status(
                    Code.INTERNAL, f"ttrpc: unknown message type {frame.type} received"
                )
            )
        else:
            try:
                waiter.set_result(decode_response(frame.payload or b""))
            except DecodeError as exc:
                waiter.set_exception(
                    error_from_status(
                        Code.INTERNAL,
                        f"ttrpc: malformed response on stream {frame.stream_id}: {exc}",
                    )
                )

    def _fail_all(self) -> None:
        """Mark the connection closed and fail every call still waiting."""
        self._closed = True
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            if not waiter.done():
                waiter.set_exception(closed_error())
