"""ttrpc wire framing: a 10-byte header followed by a protobuf payload.

Header layout (all big-endian), as in containerd/ttrpc 1.1 ``channel.go``:

    bytes 0-3  payload length (header excluded)
    bytes 4-7  stream id (odd for client-initiated streams)
    byte  8    message type (1 request, 2 response)
    byte  9    flags (reserved, sent as 0)

A payload longer than ``MESSAGE_LENGTH_MAX`` is never buffered: the reader
skips its bytes so the connection stays usable, and reports the frame as
oversized so the caller can answer that stream with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from dataclasses import dataclass

HEADER_LENGTH = 10
MESSAGE_LENGTH_MAX = 4 << 20

_HEADER = struct.Struct(">IIBB")
_DISCARD_CHUNK = 64 << 10


class MessageType(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2


@dataclass(frozen=True, slots=True)
class Frame:
    """One received message. ``payload`` is None when the frame was oversized."""

    stream_id: int
    type: int
    flags: int
    length: int
    payload: bytes | None

    @property
    def oversized(self) -> bool:
        return self.payload is None


def oversized_message(length: int) -> str:
    """The status message used for a frame over the size limit (same text as Go)."""
    return f"message length {length} exceed maximum message size of {MESSAGE_LENGTH_MAX}"


def encode_frame(stream_id: int, message_type: int, payload: bytes, flags: int = 0) -> bytes:
    """Header plus payload as one buffer, so a single write keeps frames whole."""
    return _HEADER.pack(len(payload), stream_id, message_type, flags) + payload


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """Read the next frame.

    Raises ``asyncio.IncompleteReadError`` at end of stream (also mid-frame).
    """
    header = await reader.readexactly(HEADER_LENGTH)
    length, stream_id, message_type, flags = _HEADER.unpack(header)
    if length > MESSAGE_LENGTH_MAX:
        await _discard(reader, length)
        return Frame(stream_id, message_type, flags, length, None)
    payload = await reader.readexactly(length) if length else b""
    return Frame(stream_id, message_type, flags, length, payload)


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    remaining = length
    while remaining:
        chunk = await reader.read(min(remaining, _DISCARD_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(chunk)
