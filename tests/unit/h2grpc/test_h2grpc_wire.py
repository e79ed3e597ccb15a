"""Our HTTP/2 server frame by frame: what a peer that breaks the rules, or stretches them, gets."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import hpack

from pycontainerd.h2grpc import frames
from pycontainerd.h2grpc.frames import ErrorCode, Flag, FrameType, Setting
from tests.unit.h2grpc.test_h2grpc_calls import SERVICE, serving

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
Frame = tuple[int, int, int, bytes]


class RawClient:
    """Writes frames as given and reads what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()

    @classmethod
    async def connect(cls, path: str, preface: bytes = frames.PREFACE) -> RawClient:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(preface)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def request_block(self, path: str, method: str = "POST") -> bytes:
        return self.encoder.encode(
            [
                (":method", method),
                (":scheme", "http"),
                (":path", path),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]
        )

    async def frame(self) -> Frame:
        header = await self.reader.readexactly(frames.FRAME_HEADER_SIZE)
        length, kind, flags, stream_id = frames.parse_header(header, 0)
        return kind, flags, stream_id, await self.reader.readexactly(length)

    async def until(self, kind: FrameType, stream_id: int | None = None) -> Frame:
        while True:
            got = await asyncio.wait_for(self.frame(), 5)
            if got[0] == kind and (stream_id is None or got[2] == stream_id):
                return got

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) is not None


def _server_path(server: Any) -> str:
    return server._listeners[0]._sock.getsockname()


def message(payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def test_a_bad_preface_gets_a_protocol_error_goaway(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (server, _):
            client = await RawClient.connect(
                _server_path(server), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            kind, _, _, payload = await client.until(FrameType.GOAWAY)
            assert struct.unpack(">II", payload[:8])[1] == ErrorCode.PROTOCOL_ERROR
            await client.closed()

    run(scenario())


def test_settings_and_pings_are_acknowledged(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (server, _):
            client = await RawClient.connect(_server_path(server))
            client.send(frames.settings({Setting.INITIAL_WINDOW_SIZE: 1000}))
            _, flags, _, _ = await client.until(FrameType.SETTINGS)
            while not flags & Flag.ACK:
                _, flags, _, _ = await client.until(FrameType.SETTINGS)
            client.send(frames.frame(FrameType.PING, 0, 0, b"12345678"))
            _, flags, _, payload = await client.until(FrameType.PING)
            assert flags & Flag.ACK and payload == b"12345678"

    run(scenario())


def test_data_on_stream_zero_ends_the_connection(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (server, _):
            client = await RawClient.connect(_server_path(server))
            client.send(frames.settings({}) + frames.data(0, b"x"))
            _, _, _, payload = await client.until(FrameType.GOAWAY)
            assert struct.unpack(">II", payload[:8])[1] == ErrorCode.PROTOCOL_ERROR

    run(scenario())


def test_a_request_that_is_not_grpc_gets_an_http_status(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (server, _):
            client = await RawClient.connect(_server_path(server))
            client.send(frames.settings({}))
            block = client.request_block(f"/{SERVICE}/Unary", method="GET")
            client.send(frames.headers(1, block, 16384, end_stream=True))
            _, flags, _, payload = await client.until(FrameType.HEADERS, 1)
            assert flags & Flag.END_STREAM
            assert dict(client.decoder.decode(payload))[":status"] == "405"

    run(scenario())


def test_continuation_frames_and_a_tiny_peer_window(run: Runner) -> None:
    """Headers split over CONTINUATION; a response that may only go out 100 bytes at a time."""

    async def scenario() -> None:
        async with serving() as (server, _):
            client = await RawClient.connect(_server_path(server))
            client.send(frames.settings({Setting.INITIAL_WINDOW_SIZE: 100}))
            block = client.request_block(f"/{SERVICE}/Unary")
            client.send(
                frames.frame(FrameType.HEADERS, 0, 1, block[:5])
                + frames.frame(FrameType.CONTINUATION, 0, 1, block[5:9])
                + frames.frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block[9:])
            )
            payload = bytes(range(250))
            client.send(frames.data(1, message(payload), end_stream=True))
            received = b""
            while len(received) < 100:
                _, _, _, chunk = await client.until(FrameType.DATA, 1)
                received += chunk
            assert len(received) == 100  # the window is spent: nothing more until credit
            client.send(frames.window_update(0, 1000) + frames.window_update(1, 1000))
            while len(received) < 255:
                _, _, _, chunk = await client.until(FrameType.DATA, 1)
                received += chunk
            assert received == message(payload)
            _, flags, _, trailer = await client.until(FrameType.HEADERS, 1)
            assert flags & Flag.END_STREAM
            assert dict(client.decoder.decode(trailer))["grpc-status"] == "0"

    run(scenario())
