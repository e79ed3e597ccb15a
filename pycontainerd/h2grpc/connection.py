"""One HTTP/2 connection: frames in, calls dispatched, flow control both ways."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pycontainerd.errdefs import Code
from pycontainerd.h2grpc import frames
from pycontainerd.h2grpc.call import Call
from pycontainerd.h2grpc.context import Metadata
from pycontainerd.h2grpc.frames import ConnectionError_, ErrorCode, Flag, FrameType, Setting
from pycontainerd.h2grpc.headers import (
    RESPONSE_HEADERS,
    encode_metadata,
    http_error,
    parse_request,
    trailers,
)
from pycontainerd.h2grpc.hpack_decoder import HeaderBlockDecoder

if TYPE_CHECKING:
    from pycontainerd.h2grpc.server import Server

log = logging.getLogger(__name__)

#: What each stream may send us before we credit it back, and the whole connection.
STREAM_WINDOW = 4 << 20
CONNECTION_WINDOW = 16 << 20
MAX_HEADER_LIST_SIZE = 1 << 20
_OUR_SETTINGS = frames.settings(
    {
        Setting.ENABLE_PUSH: 0,
        Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        Setting.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
    }
) + frames.window_update(0, CONNECTION_WINDOW - frames.DEFAULT_WINDOW)
_STREAM_CREDIT_BATCH = STREAM_WINDOW // 8
_CONNECTION_CREDIT_BATCH = CONNECTION_WINDOW // 4


class Connection(asyncio.Protocol):
    """Serves the calls of one client connection."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self.max_receive = server.max_receive_message_length
        self.max_send = server.max_send_message_length
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._need = len(frames.PREFACE)
        self._preface_seen = False
        self._decoder = HeaderBlockDecoder(MAX_HEADER_LIST_SIZE)
        self._calls: dict[int, Call] = {}
        self._last_stream_id = 0
        self._continuation: tuple[int, int, list[bytes]] | None = None
        self._going_away = False
        self._closed = False
        #: What we may still send: on the connection, and (per call) on each stream.
        self.send_window = frames.DEFAULT_WINDOW
        self._initial_send_window = frames.DEFAULT_WINDOW
        self._peer_max_frame = frames.DEFAULT_MAX_FRAME
        self._unreturned = 0  # connection-level bytes received and not yet credited
        self._window_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False
        #: Frames queued while a read is handled, sent together when it is done.
        self._out: list[bytes] = []
        self._receiving = False
        self._loop = asyncio.get_running_loop()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._write(_OUR_SETTINGS)

    def data_received(self, data: bytes) -> None:
        self._receiving = True
        try:
            self._receive(data)
        finally:
            self._receiving = False
            self._flush()

    def _receive(self, data: bytes) -> None:
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:
                return
            data = bytes(self._buffer)
            self._buffer.clear()
        elif len(data) < self._need:
            self._buffer += data
            return
        offset = 0
        if not self._preface_seen:
            if data[: len(frames.PREFACE)] != frames.PREFACE:
                self._abort(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 client preface")
                return
            self._preface_seen = True
            offset = len(frames.PREFACE)
        end = len(data)
        try:
            while end - offset >= frames.FRAME_HEADER_SIZE:
                length, kind, flags, stream_id = frames.parse_header(data, offset)
                if length > frames.DEFAULT_MAX_FRAME:
                    raise ConnectionError_(
                        ErrorCode.FRAME_SIZE_ERROR, f"a frame of {length} bytes is over our maximum"
                    )
                start = offset + frames.FRAME_HEADER_SIZE
                if end - start < length:
                    break
                offset = start + length
                self._on_frame(kind, flags, stream_id, data[start:offset])
                if self._closed:
                    return
        except ConnectionError_ as exc:
            self._abort(exc.code, str(exc))
            return
        except Exception as exc:  # a bug of ours: say so on the wire and in the log
            log.exception("gRPC connection: unexpected error handling a frame")
            self._abort(ErrorCode.INTERNAL_ERROR, f"internal error: {exc}")
            return
        if offset < end:
            self._buffer += memoryview(data)[offset:]
            if end - offset >= frames.FRAME_HEADER_SIZE:
                self._need = frames.FRAME_HEADER_SIZE + frames.parse_header(data, offset)[0]
            else:
                self._need = frames.FRAME_HEADER_SIZE
        else:
            self._need = frames.FRAME_HEADER_SIZE
        if self._unreturned >= _CONNECTION_CREDIT_BATCH:
            self._write(frames.window_update(0, self._unreturned))
            self._unreturned = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for call in list(self._calls.values()):
            call.reset()
        self._wake_senders()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self._server.connection_closed(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self._drain_waiter = None

    # -- frames in -----------------------------------------------------------------------

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is not None and kind != FrameType.CONTINUATION:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted")
        if kind == FrameType.DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == FrameType.HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == FrameType.WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == FrameType.SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == FrameType.PING:
            self._on_ping(flags, stream_id, payload)
        elif kind == FrameType.RST_STREAM:
            self._on_rst_stream(stream_id, payload)
        elif kind == FrameType.CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif kind == FrameType.GOAWAY:
            if stream_id != 0:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        elif kind == FrameType.PUSH_PROMISE:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "a client may not push")
        elif kind == FrameType.PRIORITY and (stream_id == 0 or len(payload) != 5):
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "malformed PRIORITY")
        # Unknown frame types are ignored (RFC 9113, 5.5).

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._unreturned += size
        if self._unreturned > CONNECTION_WINDOW:
            raise ConnectionError_(ErrorCode.FLOW_CONTROL_ERROR, "the connection window overflowed")
        call = self._calls.get(stream_id)
        if call is None:
            if stream_id > self._last_stream_id:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream this side has ended; only the connection's window counts it
        if call.remote_closed:
            self._write(frames.rst_stream(stream_id, ErrorCode.STREAM_CLOSED))
            call.reset()
            return
        call.unreturned += size
        if call.unreturned > STREAM_WINDOW + _STREAM_CREDIT_BATCH:
            self._write(frames.rst_stream(stream_id, ErrorCode.FLOW_CONTROL_ERROR))
            call.reset()
            return
        if flags & Flag.PADDED:
            payload = frames.strip_padding(flags, payload)
        if payload:
            call.receive(payload)
        if flags & Flag.END_STREAM:
            call.remote_end()
        else:
            self.credit(call)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}")
        if flags & (Flag.PADDED | Flag.PRIORITY):
            payload = frames.strip_padding(flags, payload, 5 if flags & Flag.PRIORITY else 0)
        if flags & Flag.END_HEADERS:
            self._on_header_block(flags, stream_id, payload)
        else:
            self._continuation = (stream_id, flags, [payload])

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        pending = self._continuation
        if pending is None or pending[0] != stream_id:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        pending[2].append(payload)
        if sum(map(len, pending[2])) > MAX_HEADER_LIST_SIZE:
            raise ConnectionError_(ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
        if flags & Flag.END_HEADERS:
            self._continuation = None
            self._on_header_block(pending[1], stream_id, b"".join(pending[2]))

    def _on_header_block(self, flags: int, stream_id: int, block: bytes) -> None:
        fields = self._decoder.decode(block)  # always: the decoder's table must follow every block
        call = self._calls.get(stream_id)
        if call is not None:  # trailers from the client end its side
            if not flags & Flag.END_STREAM:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM")
            call.remote_end()
            return
        if stream_id <= self._last_stream_id:
            raise ConnectionError_(ErrorCode.STREAM_CLOSED, f"HEADERS on closed stream {stream_id}")
        self._last_stream_id = stream_id
        if self._going_away:
            self._write(frames.rst_stream(stream_id, ErrorCode.REFUSED_STREAM))
            return
        request = parse_request(fields)
        if isinstance(request, tuple):
            status, reason = request
            out = frames.headers(
                stream_id, http_error(status, reason), self._peer_max_frame, end_stream=True
            )
            if not flags & Flag.END_STREAM:
                out += frames.rst_stream(stream_id, ErrorCode.NO_ERROR)
            self._write(out)
            return
        call = Call(
            self, stream_id, request, self._server.handler_for(request), self._initial_send_window
        )
        self._calls[stream_id] = call
        if flags & Flag.END_STREAM:
            call.remote_end()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE is not 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFF_FFFF
        if stream_id == 0:
            if increment == 0:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "a zero window increment")
            self.send_window += increment
            if self.send_window > frames.MAX_WINDOW:
                raise ConnectionError_(ErrorCode.FLOW_CONTROL_ERROR, "the send window overflowed")
        else:
            call = self._calls.get(stream_id)
            if call is None:
                return
            if increment == 0 or call.send_window + increment > frames.MAX_WINDOW:
                self._write(frames.rst_stream(stream_id, ErrorCode.FLOW_CONTROL_ERROR))
                call.reset()
                return
            call.send_window += increment
        self._wake_senders()

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & Flag.ACK:
            return
        for key, value in frames.parse_settings(payload):
            if key == Setting.INITIAL_WINDOW_SIZE:
                if value > frames.MAX_WINDOW:
                    raise ConnectionError_(ErrorCode.FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._initial_send_window
                self._initial_send_window = value
                for call in self._calls.values():
                    call.send_window += delta
            elif key == Setting.MAX_FRAME_SIZE:
                if not frames.DEFAULT_MAX_FRAME <= value <= (1 << 24) - 1:
                    raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, f"bad MAX_FRAME_SIZE {value}")
                self._peer_max_frame = value
            elif key == Setting.ENABLE_PUSH and value > 1:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, f"bad ENABLE_PUSH {value}")
        self._write(frames.SETTINGS_ACK)
        self._wake_senders()

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "PING is not 8 bytes")
        if not flags & Flag.ACK:
            self._write(frames.ping_ack(payload))

    def _on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM is not 4 bytes")
        call = self._calls.get(stream_id)
        if call is not None:
            call.reset()
        elif stream_id > self._last_stream_id:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream")

    # -- for calls -----------------------------------------------------------------------

    def credit(self, call: Call) -> None:
        """Give the peer back stream window, unless the call's handler is behind on reading."""
        if (
            call.unreturned >= _STREAM_CREDIT_BATCH
            and call.queued_bytes <= STREAM_WINDOW // 2
            and not call.remote_closed
            and not call.finished
        ):
            self._write(frames.window_update(call.stream_id, call.unreturned), later=True)
            call.unreturned = 0

    def send_headers(self, call: Call, metadata: Metadata) -> None:
        if call.headers_sent or call.finished:
            return
        block = RESPONSE_HEADERS + b"".join(encode_metadata(metadata))
        self._write(
            frames.headers(call.stream_id, block, self._peer_max_frame, end_stream=False),
            later=True,
        )
        call.headers_sent = True

    async def send_message(
        self, call: Call, framed: bytes, status: tuple[Code, str, Metadata] | None
    ) -> None:
        """Send one length-prefixed message; with ``status``, the trailers follow it at once."""
        if call.finished:
            raise asyncio.CancelledError
        out: list[bytes] = []
        if not call.headers_sent:
            out.append(
                frames.headers(
                    call.stream_id, RESPONSE_HEADERS, self._peer_max_frame, end_stream=False
                )
            )
            call.headers_sent = True
        view = memoryview(framed)
        offset, total = 0, len(framed)
        while offset < total:
            allowed = min(self.send_window, call.send_window, self._peer_max_frame, total - offset)
            if allowed <= 0:
                if out:
                    self._write(b"".join(out))
                    out = []
                await self._window_opened()
                if call.finished:
                    raise asyncio.CancelledError
                continue
            out.append(frames.data(call.stream_id, view[offset : offset + allowed]))
            offset += allowed
            self.send_window -= allowed
            call.send_window -= allowed
        if status is not None:
            out.append(self._status_frames(call, *status))
        # A streamed message waits for the end of the loop's turn: a handler that
        # ends right after it sends its status in the same write.
        self._write(b"".join(out), later=status is None)
        if self._paused and not self._closed:
            await self._drained()

    def finish(self, call: Call, code: Code, details: str, metadata: Metadata) -> None:
        """Send the call's status (trailers, or a trailers-only response)."""
        if call.finished:
            return
        self._write(self._status_frames(call, code, details, metadata))

    def call_done(self, call: Call) -> None:
        if self._calls.get(call.stream_id) is call:
            del self._calls[call.stream_id]
        if self._going_away and not self._calls:
            self._close_transport()

    # -- the connection as a whole -------------------------------------------------------

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def go_away(self) -> None:
        """Take no new calls; close once the ones running are done."""
        if self._going_away or self._closed:
            return
        self._going_away = True
        self._write(frames.goaway(self._last_stream_id, ErrorCode.NO_ERROR))
        if not self._calls:
            self._close_transport()

    def close(self) -> None:
        if not self._closed:
            self._close_transport()

    def _status_frames(self, call: Call, code: Code, details: str, metadata: Metadata) -> bytes:
        block = trailers(code, details, metadata)
        if not call.headers_sent:
            block = RESPONSE_HEADERS + block
            call.headers_sent = True
        out = frames.headers(call.stream_id, block, self._peer_max_frame, end_stream=True)
        if not call.remote_closed:  # the response is complete: the peer may stop sending
            out += frames.rst_stream(call.stream_id, ErrorCode.NO_ERROR)
        call.finished = True
        return out

    def _write(self, data: bytes, *, later: bool = False) -> None:
        """Send bytes, together with whatever is queued.

        What handling one read queues (acks, credits, refusals) goes out when the
        read is handled. A call's end (a unary answer is headers, message and
        trailers in one piece) goes out at once; with ``later`` (a streamed
        message, a credit) the bytes wait for the end of this turn of the loop.
        """
        if self._closed:
            return
        self._out.append(data)
        if self._receiving:
            return
        if not later:
            self._flush()
        elif len(self._out) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and not self._closed and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _close_transport(self) -> None:
        self._flush()
        if self._transport is not None:
            self._transport.close()

    def _abort(self, code: ErrorCode, message: str) -> None:
        log.warning("gRPC connection closed: %s", message)
        self._write(frames.goaway(self._last_stream_id, code, message.encode()[:256]))
        self._close_transport()
        self._closed = True

    async def _window_opened(self) -> None:
        if self._closed:
            raise asyncio.CancelledError
        if self._window_waiter is None:
            self._window_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._window_waiter)

    def _wake_senders(self) -> None:
        waiter, self._window_waiter = self._window_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _drained(self) -> None:
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain_waiter)
