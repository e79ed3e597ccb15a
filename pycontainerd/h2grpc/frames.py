"""HTTP/2 frames (RFC 9113): the constants and the encoders the server sends."""

from __future__ import annotations

import enum
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER = struct.Struct(">I B I")  # length (24 bits) + type packed as one int, flags, stream id
FRAME_HEADER_SIZE = 9
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1


class FrameType(enum.IntEnum):
    DATA = 0
    HEADERS = 1
    PRIORITY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PUSH_PROMISE = 5
    PING = 6
    GOAWAY = 7
    WINDOW_UPDATE = 8
    CONTINUATION = 9


class Flag:
    """Frame flags, plain ints: IntFlag arithmetic builds an enum per ``&`` on the hot path."""

    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class Setting(enum.IntEnum):
    HEADER_TABLE_SIZE = 1
    ENABLE_PUSH = 2
    MAX_CONCURRENT_STREAMS = 3
    INITIAL_WINDOW_SIZE = 4
    MAX_FRAME_SIZE = 5
    MAX_HEADER_LIST_SIZE = 6


class ErrorCode(enum.IntEnum):
    NO_ERROR = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2
    FLOW_CONTROL_ERROR = 3
    STREAM_CLOSED = 5
    FRAME_SIZE_ERROR = 6
    REFUSED_STREAM = 7
    CANCEL = 8
    COMPRESSION_ERROR = 9
    ENHANCE_YOUR_CALM = 11


class ConnectionError_(Exception):  # noqa: N801 - not the builtin
    """The peer broke the protocol: the connection ends with a GOAWAY carrying ``code``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(kind: FrameType, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(len(payload) << 8 | kind, flags, stream_id) + payload


def parse_header(data: bytes | bytearray, offset: int) -> tuple[int, int, int, int]:
    """(length, type, flags, stream id) of the frame header at ``offset``."""
    length_type, flags, stream_id = HEADER.unpack_from(data, offset)
    return length_type >> 8, length_type & 0xFF, flags, stream_id & 0x7FFF_FFFF


def settings(values: dict[Setting, int]) -> bytes:
    payload = b"".join(struct.pack(">HI", key, value) for key, value in values.items())
    return frame(FrameType.SETTINGS, 0, 0, payload)


SETTINGS_ACK = frame(FrameType.SETTINGS, Flag.ACK, 0)


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise ConnectionError_(
            ErrorCode.FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6"
        )
    return [struct.unpack_from(">HI", payload, i) for i in range(0, len(payload), 6)]


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(FrameType.WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst_stream(stream_id: int, code: ErrorCode) -> bytes:
    return frame(FrameType.RST_STREAM, 0, stream_id, struct.pack(">I", code))


def goaway(last_stream_id: int, code: ErrorCode, debug: bytes = b"") -> bytes:
    return frame(FrameType.GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code) + debug)


def ping_ack(opaque: bytes) -> bytes:
    return frame(FrameType.PING, Flag.ACK, 0, opaque)


def headers(stream_id: int, block: bytes, max_frame: int, *, end_stream: bool) -> bytes:
    """A header block as HEADERS plus CONTINUATION frames of at most ``max_frame`` bytes."""
    end = Flag.END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(FrameType.HEADERS, end | Flag.END_HEADERS, stream_id, block)
    parts = [block[i : i + max_frame] for i in range(0, len(block), max_frame)]
    out = [frame(FrameType.HEADERS, end, stream_id, parts[0])]
    for part in parts[1:-1]:
        out.append(frame(FrameType.CONTINUATION, 0, stream_id, part))
    out.append(frame(FrameType.CONTINUATION, Flag.END_HEADERS, stream_id, parts[-1]))
    return b"".join(out)


def data(stream_id: int, payload: bytes | memoryview, *, end_stream: bool = False) -> bytes:
    flags = Flag.END_STREAM if end_stream else 0
    return HEADER.pack(len(payload) << 8 | FrameType.DATA, flags, stream_id) + payload


def strip_padding(flags: int, payload: bytes, extra_prefix: int = 0) -> bytes:
    """The payload of a DATA or HEADERS frame without its padding (and ``extra_prefix`` bytes)."""
    if flags & Flag.PADDED:
        if not payload:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "padded frame without a pad length")
        pad = payload[0]
        end = len(payload) - pad
        start = 1 + extra_prefix
        if end < start:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "padding longer than the frame")
        return payload[start:end]
    return payload[extra_prefix:] if extra_prefix else payload
