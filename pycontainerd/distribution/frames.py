"""Blob writes as frames: chunks of data ready for the content Write stream.

A frame is a content WRITE message already encoded, so the gRPC writer sends
it as it is (one copy of the data from the read to the wire); an in-process
writer takes its :attr:`WriteFrame.data`. Both writers take the same frames,
so the fetch code does not know which one it feeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from pycontainerd.api.services.content.v1 import content_pb2 as api

#: Bytes per WRITE message: big messages cost less per byte, and 4 MiB leaves
#: ample room under the 16 MiB message limit of containerd and of our daemon.
WRITE_CHUNK_SIZE = 4 << 20
# Where a write's data comes from: bytes, a stream, or a function opening a
# stream at a byte offset (so a resumed write need not re-read the start).
WriteSource = bytes | AsyncIterable[bytes] | Callable[[int], AsyncIterable[bytes]]


# -- WRITE messages, encoded by hand ------------------------------------------------------------
#
# A WRITE message is action (field 1), offset (field 5) and data (field 6).
# Building it as protobuf costs two copies of the data (into the message, then
# out to the wire); encoding the few header bytes by hand and joining them to
# the data costs one.

_ACTION_WRITE_FIELD = bytes([1 << 3 | 0, api.WRITE])  # field 1, varint
_OFFSET_TAG = bytes([5 << 3 | 0])  # field 5, varint
_DATA_TAG = bytes([6 << 3 | 2])  # field 6, length-delimited
#: Room a FrameBuffer keeps before its data for the header (at most 1+1+1+10+1+10 bytes).
FRAME_HEADROOM = 32


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _write_header(offset: int, size: int) -> bytes:
    """Wire bytes of a WRITE message up to its data (what protobuf would write)."""
    offset_field = _OFFSET_TAG + _varint(offset) if offset else b""
    data_field = _DATA_TAG + _varint(size) if size else b""
    return _ACTION_WRITE_FIELD + offset_field + data_field


@dataclass(frozen=True, slots=True)
class WriteFrame:
    """One WRITE message of the content Write stream, ready for the wire."""

    offset: int
    size: int
    wire: bytes

    @classmethod
    def encode(cls, offset: int, data: bytes | bytearray | memoryview) -> WriteFrame:
        size = len(data)
        return cls(offset, size, b"".join((_write_header(offset, size), data)))

    @property
    def data(self) -> memoryview:
        """The frame's data without the header, for a writer that does not send it on."""
        return memoryview(self.wire)[len(self.wire) - self.size :]


class FrameBuffer:
    """A reusable buffer to read data into and turn into a WriteFrame with a single copy.

    Fill ``space`` (e.g. with ``readinto``), then call :meth:`frame`.
    """

    def __init__(self, size: int = WRITE_CHUNK_SIZE) -> None:
        self._buffer = bytearray(FRAME_HEADROOM + size)
        self._view = memoryview(self._buffer)
        self.space = self._view[FRAME_HEADROOM:]

    def frame(self, offset: int, size: int) -> WriteFrame:
        """The frame of the first ``size`` bytes of ``space``, written at ``offset``."""
        header = _write_header(offset, size)
        start = FRAME_HEADROOM - len(header)
        self._view[start:FRAME_HEADROOM] = header
        return WriteFrame(offset, size, bytes(self._view[start : FRAME_HEADROOM + size]))


class ChunkWriter(Protocol):
    """What :func:`write_source` needs of a writer."""

    @property
    def offset(self) -> int: ...

    async def write(self, data: bytes | bytearray | memoryview) -> None: ...


async def write_source(
    writer: ChunkWriter,
    source: WriteSource,
    total: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write what ``source`` holds after ``writer.offset`` (nothing when it is complete)."""
    if total and writer.offset == total:
        return
    async for chunk in chunks_from(source, writer.offset):
        await writer.write(chunk)
        if progress is not None:
            progress(writer.offset)


async def chunks_from(source: WriteSource, offset: int) -> AsyncIterator[bytes | memoryview]:
    """The bytes of ``source`` after the first ``offset``."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(offset, len(view), WRITE_CHUNK_SIZE):
            yield view[start : start + WRITE_CHUNK_SIZE]
        return
    if callable(source):
        async for chunk in source(offset):
            yield chunk
        return
    skip = offset
    async for chunk in source:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:]
        skip = 0
