"""zstd decompression: full buffers, and a cut anywhere in the stream is an error."""

from __future__ import annotations

import gzip
import io
import os

import pytest
import zstandard

from pycontainerd import errdefs
from pycontainerd.archive.compression import decompress_stream
from pycontainerd.archive.zstd_frames import ZstdFrameTracker

# Incompressible bytes, then compressible ones: raw, compressed and RLE blocks.
DATA = os.urandom(300_000) + bytes(2_000_000) + b"layer " * 50_000
SKIPPABLE = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"notes"


def frame(data: bytes = DATA, *, checksum: bool = False, level: int = 3) -> bytes:
    compressor = zstandard.ZstdCompressor(
        level=level, write_checksum=checksum, write_content_size=checksum
    )
    return compressor.compress(data)


def streamed_frames(data: bytes) -> bytes:
    """Two frames from a streaming writer (no content size in the headers)."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False) as writer:
        writer.write(data[:1000])
        writer.flush(zstandard.FLUSH_FRAME)
        writer.write(data[1000:])
    return out.getvalue()


def read_all(blob: bytes) -> bytes:
    return decompress_stream(io.BytesIO(blob), "zstd").read()


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (frame(), DATA),
        (frame(checksum=True, level=1), DATA),
        (frame() + frame(checksum=True), DATA + DATA),
        (streamed_frames(DATA), DATA),
        (frame() + SKIPPABLE + frame(), DATA + DATA),
        (frame(b""), b""),
    ],
    ids=["one-frame", "checksum", "two-frames", "streamed", "skippable", "empty-frame"],
)
def test_whole_streams_decode(blob: bytes, expected: bytes) -> None:
    assert read_all(blob) == expected


@pytest.mark.parametrize("checksum", [False, True])
def test_a_cut_anywhere_is_truncated(checksum: bool) -> None:
    first = frame(checksum=checksum)
    blob = first + frame(checksum=checksum)
    end = len(first)  # cutting exactly here leaves one whole frame: that is not a cut
    for cut in (1, 2, 3, 4, 5, 30, end - 1, end + 1, end + 5, len(blob) - 1):
        with pytest.raises(errdefs.InvalidArgument, match="truncated"):
            read_all(blob[:cut])


def test_an_empty_stream_is_truncated() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="truncated"):
        read_all(b"")


def test_trailing_junk_is_corrupt() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="corrupt"):
        read_all(frame() + b"junk")


def test_reads_fill_the_buffer() -> None:
    """Incompressible data once came out 8 KiB per read, starving the readers downstream."""
    data = os.urandom(5 << 20)
    stream = decompress_stream(io.BytesIO(frame(data, level=1)), "zstd")
    buffer = bytearray(1 << 20)
    sizes = []
    while n := stream.readinto(buffer):
        sizes.append(n)
    assert sizes == [1 << 20] * 5


def test_gzip_reads_fill_the_buffer() -> None:
    data = os.urandom(3 << 20)
    stream = decompress_stream(io.BytesIO(gzip.compress(data, 1)))
    buffer = bytearray(1 << 20)
    assert [stream.readinto(buffer) for _ in range(4)] == [1 << 20, 1 << 20, 1 << 20, 0]


def test_tracker_follows_frames_fed_byte_by_byte() -> None:
    tracker = ZstdFrameTracker()
    blob = frame(b"x" * 1000) + SKIPPABLE
    ends = []
    for index in range(len(blob)):
        tracker.feed(blob[index : index + 1])
        ends.append(tracker.at_frame_end)
    first_frame = len(frame(b"x" * 1000))
    assert ends[first_frame - 1] and not any(ends[: first_frame - 1])
    assert ends[-1] and tracker.frames == 2


def test_tracker_refuses_what_is_not_zstd() -> None:
    with pytest.raises(errdefs.InvalidArgument, match="corrupt zstd"):
        ZstdFrameTracker().feed(b"\x1f\x8b\x08\x00")
