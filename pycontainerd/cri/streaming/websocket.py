"""Kubernetes' channel protocol over WebSocket (RFC 6455) for exec and attach.

Each binary message is one channel byte and its data: 0 stdin, 1 stdout,
2 stderr, 3 error (the exit Status), 4 resize. v5.channel.k8s.io adds the
close signal, ``[255, channel]``, with which the client ends its stdin.
Client frames come masked; ours go unmasked. Pings are answered (client-go
sends a heartbeat every few seconds and gives up without pongs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import struct

from pycontainerd.cri.streaming.inbound import Inbound

log = logging.getLogger(__name__)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
PROTOCOLS = (V5, V4, "channel.k8s.io")
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"  # port-forward: SPDY frames in binary messages
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
CLOSE_SIGNAL = 255
MAX_MESSAGE = 16 * 1024 * 1024
CHUNK = 32 * 1024
STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked final frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


class Channel(Inbound):
    """One channel of a connection, read and written as spdy.Stream is."""

    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.number = number
        super().__init__()

    async def write(self, data: bytes) -> None:
        if not data:
            await self.conn.send(BINARY, bytes([self.number]))
        for start in range(0, len(data), CHUNK):
            await self.conn.send(BINARY, bytes([self.number]) + data[start : start + CHUNK])

    async def close(self) -> None:
        """Our side ends with the connection; v5 tells the client per channel."""
        if self.conn.protocol == V5:
            await self.conn.send(BINARY, bytes([CLOSE_SIGNAL, self.number]))

    async def reset(self) -> None:
        self._feed(b"", True)


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: str,
        idle_timeout: float | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.idle_timeout = idle_timeout
        self.channels = [Channel(self, n) for n in range(5)]
        self.closed = asyncio.Event()
        # A tunnel carries a byte stream (SPDY) in its messages, without channels.
        self.tunnel: asyncio.StreamReader | None = None

    async def send(self, opcode: int, payload: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(frame(opcode, payload))
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def _frame(self) -> tuple[bool, int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", await self.reader.readexactly(8))
        if length > MAX_MESSAGE:
            raise ValueError(f"a {length}-byte frame")
        mask = await self.reader.readexactly(4) if second & 0x80 else b""
        payload = await self.reader.readexactly(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(first & 0x80), first & 0x0F, payload

    async def run(self) -> None:
        message, kind = b"", 0
        try:
            while True:
                fin, opcode, payload = await asyncio.wait_for(self._frame(), self.idle_timeout)
                if opcode == PING:
                    await self.send(PONG, payload)
                    continue
                if opcode == CLOSE:
                    with contextlib.suppress(ConnectionError):
                        await self.send(CLOSE, payload[:2])
                    break
                if opcode == PONG:
                    continue
                if opcode != CONT:
                    message, kind = b"", opcode
                message += payload
                if len(message) > MAX_MESSAGE:
                    raise ValueError("message too large")
                if fin and kind == BINARY:
                    self._dispatch(message)
                    message = b""
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except ValueError as exc:
            log.warning("WebSocket connection ends on a bad frame: %s", exc)
        finally:
            for channel in self.channels:
                channel._feed(b"", True)
            if self.tunnel is not None:
                self.tunnel.feed_eof()
            self.closed.set()

    def _dispatch(self, message: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.feed_data(message)
            return
        if not message:
            return
        if message[0] == CLOSE_SIGNAL and self.protocol == V5:
            if len(message) == 2 and message[1] < len(self.channels):
                self.channels[message[1]]._feed(b"", True)
            return
        if message[0] < len(self.channels):
            self.channels[message[0]]._feed(message[1:], False)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(CLOSE, struct.pack(">H", 1000))
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class TunnelWriter:
    """The writing half of a tunnel: each write one binary message (spdy.Writer)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        if not self.conn.writer.is_closing():
            self.conn.writer.write(frame(BINARY, data))

    async def drain(self) -> None:
        await self.conn.writer.drain()

    def is_closing(self) -> bool:
        return self.conn.writer.is_closing()

    def close(self) -> None:
        if not self.conn.writer.is_closing():
            self.conn.writer.write(frame(CLOSE, struct.pack(">H", 1000)))
        self.conn.writer.close()

    async def wait_closed(self) -> None:
        await self.conn.writer.wait_closed()
