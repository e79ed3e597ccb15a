"""SPDY/3.1 framing and sessions, as Kubernetes' streaming clients speak it.

Only what client-go's remotecommand and portforward use: SYN_STREAM from the
client (answered with SYN_REPLY), DATA with FIN, RST_STREAM, PING (echoed),
GOAWAY and SETTINGS/WINDOW_UPDATE (read and ignored: the peer, moby's
spdystream, keeps no flow-control windows). Header blocks are zlib streams
primed with the SPDY/3 dictionary, one compression context per direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from pycontainerd.cri.streaming.inbound import Inbound

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
MAX_DATA = 32 * 1024
MAX_FRAME = 0xFFFFFF
RST_CANCEL = 5

# The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): each
# word with a 4-byte big-endian length, then the common values unprefixed.
_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_TAIL = (
    "10010120120220520630030230330430530630740240540640740840941041141241341441541641"
    "7502504505203 Non-Authoritative Information204 No Content301 Moved Permanently40"
    "0 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept O"
    "ct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,imag"
    "e/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/"
    "javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1"
    ",utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


def encode_headers(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        key, val = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(key)), key, struct.pack(">I", len(val)), val]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """Names lowercased; of a multi-value (NUL-joined) header, the first value."""
    (count,) = struct.unpack_from(">I", block)
    pos, headers = 4, dict[str, str]()
    for _ in range(count):
        (n,) = struct.unpack_from(">I", block, pos)
        name = block[pos + 4 : pos + 4 + n].decode().lower()
        pos += 4 + n
        (n,) = struct.unpack_from(">I", block, pos)
        value = block[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        headers.setdefault(name, value.split("\x00")[0])
    if pos != len(block):
        raise ValueError("trailing bytes after the header block")
    return headers


class ProtocolError(Exception):
    pass


class Writer(Protocol):
    """What a session writes to: an asyncio.StreamWriter, or a WebSocket tunnel."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def is_closing(self) -> bool: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class Stream(Inbound):
    """One client-opened stream: its headers, what the client sent, our writes."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        super().__init__()
        self.local_closed = False

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), MAX_DATA):
            if self.local_closed:
                return
            await self.session.send_data(self.id, bytes(view[start : start + MAX_DATA]), False)

    async def close(self) -> None:
        """Half-close our side (DATA with FIN)."""
        if not self.local_closed:
            self.local_closed = True
            await self.session.send_data(self.id, b"", True)

    async def reset(self) -> None:
        if not self.local_closed:
            self.local_closed = True
            self._feed(b"", True)
            await self.session.send_control(RST_STREAM, 0, struct.pack(">II", self.id, RST_CANCEL))


class Session:
    """The server side of one SPDY connection (after the HTTP upgrade)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: Writer,
        on_stream: Callable[[Stream], Awaitable[None] | None],
        idle_timeout: float | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.on_stream = on_stream
        self.idle_timeout = idle_timeout
        self.streams: dict[int, Stream] = {}
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.closed = asyncio.Event()

    async def send_control(self, kind: int, flags: int, payload: bytes) -> None:
        if self.writer.is_closing():
            return
        head = struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload))
        self.writer.write(head + payload)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def send_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        if self.writer.is_closing():
            return
        flags = FLAG_FIN if fin else 0
        self.writer.write(struct.pack(">II", stream_id, (flags << 24) | len(data)) + data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def _reply(self, stream_id: int) -> None:
        # Compress and write in one step: the context is shared by every frame.
        block = self._deflate.compress(encode_headers({})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        await self.send_control(SYN_REPLY, 0, struct.pack(">I", stream_id) + block)

    async def _frame(self) -> tuple[int, int, int, bytes]:
        """(control type or -1 for data, stream id or 0, flags, payload)."""
        head = await self.reader.readexactly(8)
        first, second = struct.unpack(">II", head)
        flags, length = second >> 24, second & 0xFFFFFF
        payload = await self.reader.readexactly(length) if length else b""
        if first & 0x80000000:
            if (first >> 16) & 0x7FFF != VERSION:
                raise ProtocolError(f"SPDY version {(first >> 16) & 0x7FFF}, not {VERSION}")
            return first & 0xFFFF, 0, flags, payload
        return -1, first & 0x7FFFFFFF, flags, payload

    async def run(self) -> None:
        """Read frames until the client goes away (or stays idle too long)."""
        try:
            while True:
                kind, stream_id, flags, payload = await asyncio.wait_for(
                    self._frame(), self.idle_timeout
                )
                if kind == -1:
                    stream = self.streams.get(stream_id)
                    if stream is not None:
                        stream._feed(payload, bool(flags & FLAG_FIN))
                elif kind == SYN_STREAM:
                    await self._syn_stream(flags, payload)
                elif kind == RST_STREAM:
                    (stream_id,) = struct.unpack_from(">I", payload)
                    stream = self.streams.get(stream_id & 0x7FFFFFFF)
                    if stream is not None:
                        stream.local_closed = True
                        stream._feed(b"", True)
                elif kind == PING:
                    await self.send_control(PING, 0, payload)
                elif kind == GOAWAY:
                    break
                # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do for us.
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except (ProtocolError, zlib.error, ValueError, struct.error) as exc:
            log.warning("SPDY session ends on a bad frame: %s", exc)
        finally:
            for stream in self.streams.values():
                stream._feed(b"", True)
                stream.local_closed = True
            self.closed.set()

    async def _syn_stream(self, flags: int, payload: bytes) -> None:
        stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
        block = self._inflate.decompress(payload[10:])
        headers = decode_headers(block)
        if stream_id in self.streams or stream_id % 2 == 0:
            raise ProtocolError(f"bad stream id {stream_id}")
        stream = Stream(self, stream_id, headers)
        self.streams[stream_id] = stream
        if flags & FLAG_FIN:
            stream._feed(b"", True)
        await self._reply(stream_id)
        result = self.on_stream(stream)
        if result is not None:
            await result

    async def close(self) -> None:
        """GOAWAY, then the connection."""
        last = max(self.streams, default=0)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send_control(GOAWAY, 0, struct.pack(">II", last, 0))
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
