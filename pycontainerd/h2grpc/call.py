"""One gRPC call on one HTTP/2 stream: its messages in, its handler, its messages and status out."""

from __future__ import annotations

import asyncio
import inspect
import logging
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

from pycontainerd.errdefs import Code
from pycontainerd.h2grpc.context import EOF, AbortError, Metadata, ServicerContext
from pycontainerd.h2grpc.handlers import MethodHandler
from pycontainerd.h2grpc.headers import Request

if TYPE_CHECKING:
    from pycontainerd.h2grpc.connection import Connection

log = logging.getLogger(__name__)

_PREFIX_SIZE = 5  # compressed flag + 4-byte big-endian length
_DECOMPRESSORS = {"gzip": 31, "deflate": 15}  # zlib wbits per grpc-encoding


class CallFailed(Exception):
    """The call ends with this status, whatever its handler does."""

    def __init__(self, code: Code, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class Call:
    """A stream's call. The connection feeds it frames; its task runs the handler."""

    def __init__(
        self,
        connection: Connection,
        stream_id: int,
        request: Request,
        handler: MethodHandler,
        send_window: int,
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.request = request
        self.handler = handler
        self.send_window = send_window
        self.context = ServicerContext(self, request.timeout)
        #: Bytes received and not yet credited back to the peer's stream window.
        self.unreturned = 0
        self.remote_closed = False
        self.cancelled = False  # reset by the peer, or its connection lost
        self.finished = False  # status sent, or the stream reset
        self.headers_sent = False
        self.task: asyncio.Task[None] | None = None
        self._buffer = bytearray()
        self._messages: deque[bytes] = deque()
        self.queued_bytes = 0
        self._reader: asyncio.Future[None] | None = None
        self._failure: CallFailed | None = None
        self._deadline_hit = False
        self._serving = False  # the handler's task has taken its first step
        self._ended = False
        self._timer: asyncio.TimerHandle | None = None
        if request.timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(
                request.timeout, self._deadline_expired
            )
        if handler.request_streaming:
            self._start()

    # -- from the connection -----------------------------------------------------------

    def receive(self, payload: bytes) -> None:
        """DATA for this stream: split it into messages."""
        if self.finished:
            return
        buffer = self._buffer
        if not buffer and len(payload) >= _PREFIX_SIZE:
            length = int.from_bytes(payload[1:5], "big")
            if len(payload) == _PREFIX_SIZE + length and length <= self.connection.max_receive:
                self._queue(payload[0], payload[_PREFIX_SIZE:])
                self._wake_reader()
                return
        buffer += payload
        while len(buffer) >= _PREFIX_SIZE:
            length = int.from_bytes(buffer[1:5], "big")
            if length > self.connection.max_receive:
                self.fail(
                    Code.RESOURCE_EXHAUSTED,
                    f"grpc: received message larger than max ({length} vs. "
                    f"{self.connection.max_receive})",
                )
                return
            end = _PREFIX_SIZE + length
            if len(buffer) < end:
                break
            flag = buffer[0]
            message = bytes(buffer[_PREFIX_SIZE:end])
            del buffer[:end]
            self._queue(flag, message)
        self._wake_reader()

    def remote_end(self) -> None:
        """The peer half-closed: no more request messages."""
        self.remote_closed = True
        if self.finished:
            return
        if self._buffer:
            self.fail(Code.INTERNAL, "grpc: the request ends inside a message")
        elif not self.handler.request_streaming:
            if len(self._messages) != 1:
                self.fail(
                    Code.INTERNAL,
                    f"grpc: a unary call got {len(self._messages)} request messages",
                )
                return
            self._start()
        self._wake_reader()

    def reset(self) -> None:
        """The peer reset the stream or the connection is gone: stop, send nothing more."""
        if self.finished:
            return
        self.cancelled = True
        self.finished = True
        self._stop_timer()
        self._wake_reader()
        if self.task is not None:
            self.task.cancel()
            if self._serving:
                return  # _serve ends the call
        self._end()

    def fail(self, code: Code, details: str) -> None:
        """End the call with this status now (bad input that is not the handler's to see)."""
        if self.finished:
            return
        self._failure = CallFailed(code, details)
        self._interrupt()

    # -- for the handler ---------------------------------------------------------------

    async def read(self) -> Any:
        message = await self.next_message()
        return EOF if message is None else message

    async def next_message(self) -> Any:
        """The next request message, deserialized; None after the last one."""
        while not self._messages:
            if self.cancelled:
                raise asyncio.CancelledError
            if self.remote_closed or self.finished:
                return None
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        raw = self._messages.popleft()
        self.queued_bytes -= len(raw)
        self.connection.credit(self)
        return self._deserialize(raw)

    async def send(self, message: Any) -> None:
        await self.connection.send_message(self, self._frame(message), None)

    async def send_headers(self, metadata: Metadata) -> None:
        self.connection.send_headers(self, metadata)

    # -- the handler's task ------------------------------------------------------------

    def _start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        """The handler's task. It ends the call itself; a task cancelled before its
        first step never runs this, so `reset` and `_interrupt` end such a call."""
        self._serving = True
        try:
            await self._answer()
        finally:
            if not self.finished and (status := self._interruption()) is not None:
                self.connection.finish(self, *status, ())
            self._end()

    async def _answer(self) -> None:
        context = self.context
        try:
            status = await self._run_handler()
        except AbortError:
            status = (context.code() or Code.UNKNOWN, context.details())
        except CallFailed as failed:
            status = (failed.code, failed.details)
        except asyncio.CancelledError:
            interrupted = self._interruption()
            if interrupted is None:
                if self.cancelled:
                    return  # the peer is gone: nobody to answer
                raise  # not the peer's doing: the server is stopping
            status = interrupted
        except Exception as exc:
            status = self._status_of_error(exc)
        if not self.finished:
            self.connection.finish(self, status[0], status[1], context.trailing_metadata())

    async def _run_handler(self) -> tuple[Code, str]:
        handler, context = self.handler, self.context
        argument: Any
        if handler.request_streaming:
            argument = _RequestIterator(self)
        else:
            argument = await self.next_message()  # queued already: remote_end started us
        result = handler.behaviour(argument, context)
        if handler.response_streaming:
            if hasattr(result, "__aiter__"):
                async for response in result:
                    await self.send(response)
            elif inspect.isawaitable(result):
                await result  # the handler wrote with context.write
            elif result is not None:
                for response in result:
                    await self.send(response)
            return context.code() or Code.OK, context.details()
        if inspect.isawaitable(result):
            result = await result
        code = context.code()
        if code is not None and code is not Code.OK:
            return code, context.details()
        framed = self._frame(result)
        await self.connection.send_message(
            self, framed, (Code.OK, context.details(), context.trailing_metadata())
        )
        return Code.OK, ""

    def _status_of_error(self, exc: Exception) -> tuple[Code, str]:
        code = self.context.code()
        if code is not None and code is not Code.OK:
            return code, self.context.details()
        log.error("%s: unexpected error in handler", self.request.method, exc_info=exc)
        return Code.UNKNOWN, f"Unexpected {type(exc)}: {exc}"

    def _end(self) -> None:
        """Once per call: stop the timer, run done callbacks, leave the connection's table."""
        if self._ended:
            return
        self._ended = True
        self._stop_timer()
        self.finished = True
        try:
            self.context.run_done_callbacks()
        except Exception:  # a callback's failure must not leak the stream
            log.exception("%s: a done callback failed", self.request.method)
        self.connection.call_done(self)

    # -- helpers -----------------------------------------------------------------------

    def _queue(self, flag: int, message: bytes) -> None:
        if flag:
            message = self._decompress(message)
        self._messages.append(message)
        self.queued_bytes += len(message)

    def _decompress(self, message: bytes) -> bytes:
        wbits = _DECOMPRESSORS.get(self.request.encoding)
        if wbits is None:
            self.fail(
                Code.UNIMPLEMENTED,
                f'grpc: Decompressor is not installed for grpc-encoding "{self.request.encoding}"',
            )
            return b""
        limit = self.connection.max_receive
        try:
            decompressor = zlib.decompressobj(wbits)
            out = decompressor.decompress(message, limit + 1)
        except zlib.error as exc:
            self.fail(Code.INTERNAL, f"grpc: failed to decompress the message: {exc}")
            return b""
        if len(out) > limit:
            self.fail(
                Code.RESOURCE_EXHAUSTED,
                f"grpc: received message after decompression larger than max ({limit})",
            )
            return b""
        return out

    def _deserialize(self, raw: bytes) -> Any:
        deserializer = self.handler.request_deserializer
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception as exc:
            raise CallFailed(Code.INTERNAL, f"grpc: error unmarshalling request: {exc}") from exc

    def _frame(self, message: Any) -> bytes:
        serializer = self.handler.response_serializer
        payload = message if serializer is None else serializer(message)
        limit = self.connection.max_send
        if len(payload) > limit:
            raise CallFailed(
                Code.RESOURCE_EXHAUSTED,
                f"grpc: trying to send message larger than max ({len(payload)} vs. {limit})",
            )
        return b"\x00" + len(payload).to_bytes(4, "big") + payload

    def _wake_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def _deadline_expired(self) -> None:
        self._timer = None
        if self.finished:
            return
        self._deadline_hit = True
        self._interrupt()

    def _interruption(self) -> tuple[Code, str] | None:
        """The status of a call stopped from outside its handler: bad input, or its deadline."""
        if self._failure is not None:
            return self._failure.code, self._failure.details
        if self._deadline_hit:
            return Code.DEADLINE_EXCEEDED, "Deadline Exceeded"
        return None

    def _interrupt(self) -> None:
        """Cancel the handler; before it started, answer with the interruption at once."""
        if self.task is not None:
            self.task.cancel()
            if self._serving:
                return  # _serve answers with the interruption
        status = self._interruption()
        assert status is not None
        self.connection.finish(self, *status, ())
        self._end()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _RequestIterator:
    """The request messages of a client-streaming call, as an async iterator."""

    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    def __aiter__(self) -> _RequestIterator:
        return self

    async def __anext__(self) -> Any:
        message = await self._call.next_message()
        if message is None:
            raise StopAsyncIteration
        return message
