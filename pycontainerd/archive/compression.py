"""Layer compression: detection by magic bytes or media type, streaming (de)compression.

Decompression runs in-process (zlib for gzip, the ``zstandard`` package for zstd).
Measured on this project's 2-core machine, in-process zlib inflated a 288 MB layer
faster (1.25 s with hashing) than piping it through an external ``gzip -d``
(1.85 s), so no external process is used. Output per call is bounded, so a
decompression bomb cannot balloon memory. Readers return full buffers: the
hashing, prefetching and tar parsing downstream then make few large calls.
"""

from __future__ import annotations

import enum
import io
import zlib
from typing import BinaryIO, Protocol

import zstandard

from pycontainerd import errdefs
from pycontainerd.archive.zstd_frames import ZstdFrameTracker
from pycontainerd.streams import ReadStream


class Compression(enum.Enum):
    """How a layer blob is compressed."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    @classmethod
    def parse(cls, value: Compression | str | None) -> Compression:
        """Accept an enum member, its value (``"gzip"``) or None (no compression)."""
        if value is None:
            return cls.NONE
        if isinstance(value, Compression):
            return value
        try:
            return cls(value.lower())
        except ValueError:
            raise errdefs.InvalidArgument(
                f"unknown compression {value!r}: use one of none, gzip, zstd"
            ) from None


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAGIC_LENGTH = 4

_OCI_LAYER_BASES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
)
_DOCKER_UNCOMPRESSED = (
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
)
_DOCKER_GZIP = (
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)

MEDIA_TYPE_LAYER = _OCI_LAYER_BASES[0]


def detect_compression(magic: bytes) -> Compression:
    """Compression of a blob given its first bytes (at least 4 for zstd)."""
    if magic.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if magic.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


def compression_for_media_type(media_type: str) -> Compression | None:
    """Compression a layer media type declares; None means "detect from the bytes".

    Docker's uncompressed layer types are often used for compressed blobs, so
    like containerd we detect those. Anything that is not a layer type, or a
    layer wrapped in something we cannot undo (``+encrypted``), is NotImplemented_.
    """
    base = media_type.split(";", 1)[0].strip()
    if base in _DOCKER_UNCOMPRESSED:
        return None
    if base in _DOCKER_GZIP:
        return Compression.GZIP
    for oci_base in _OCI_LAYER_BASES:
        if base == oci_base:
            return Compression.NONE
        if base.startswith(oci_base + "+"):
            suffix = base[len(oci_base) + 1 :]
            if suffix == "gzip":
                return Compression.GZIP
            if suffix == "zstd":
                return Compression.ZSTD
    raise errdefs.NotImplemented_(
        f"unsupported layer media type {media_type!r}: expected an OCI or Docker layer "
        "type (tar, tar+gzip or tar+zstd)"
    )


def media_type_for(compression: Compression) -> str:
    """The OCI layer media type for blobs written with ``compression``."""
    if compression is Compression.NONE:
        return MEDIA_TYPE_LAYER
    return f"{MEDIA_TYPE_LAYER}+{compression.value}"


class _PrefixedReader(io.RawIOBase):
    """A raw reader that first returns ``prefix`` (bytes already peeked) then ``source``."""

    def __init__(self, prefix: bytes, source: ReadStream) -> None:
        self._prefix = memoryview(prefix)
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        readinto = getattr(self._source, "readinto", None)
        if readinto is not None:
            return readinto(buffer) or 0
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        """Past the prefix, the source's own read: one copy less than RawIOBase's."""
        if not self._prefix:
            return self._source.read(size)
        if size < 0:
            return self.readall()
        taken = bytes(self._prefix[:size])
        self._prefix = self._prefix[len(taken) :]
        return taken


_INPUT_CHUNK = 1 << 20
_MAX_OUTPUT_PER_CALL = 1 << 20


class _GzipReader(io.RawIOBase):
    """Raw reader over one or more concatenated gzip members, in full buffers.

    zlib's output per call is capped, so a decompression bomb cannot balloon
    memory. Raises errdefs.InvalidArgument for corrupt data, a stream cut
    before the end of its last member, or trailing bytes that are not another
    member.
    """

    def __init__(self, source: ReadStream) -> None:
        self._source = source
        self._decoder = _new_gzip_decoder()
        self._input = b""
        self._output = memoryview(b"")
        self._member_started = False
        self._seen_any = False
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` as far as the stream allows (short only at its end).

        Readers downstream (hashing, the prefetch queue, the tar parser) then
        make few large calls instead of many small ones.
        """
        with memoryview(buffer) as whole:
            view = whole.cast("B")
            filled = 0
            while filled < len(view):
                if not self._output:
                    if self._done or not self._fill():
                        break
                    continue
                n = min(len(view) - filled, len(self._output))
                view[filled : filled + n] = self._output[:n]
                self._output = self._output[n:]
                filled += n
            return filled

    def _fill(self) -> bool:
        """Decode some more output; False at the clean end of the stream."""
        if not self._input:
            self._input = self._source.read(_INPUT_CHUNK)
            if not self._input:
                return self._finish()
        self._member_started = self._seen_any = True
        try:
            out = self._decoder.decompress(self._input, _MAX_OUTPUT_PER_CALL)
        except zlib.error as exc:
            raise errdefs.InvalidArgument(f"corrupt gzip data in layer: {exc}") from exc
        self._input = self._decoder.unconsumed_tail
        if self._decoder.eof:
            self._input = self._decoder.unused_data + self._input
            self._decoder = _new_gzip_decoder()
            self._member_started = False
        self._output = memoryview(out)
        return True

    def _finish(self) -> bool:
        self._done = True
        if self._member_started or not self._seen_any:
            raise errdefs.InvalidArgument(_TRUNCATED.format(name="gzip"))
        return False


def _new_gzip_decoder() -> zlib._Decompress:
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


class _TrackedSource:
    """Passes ``source``'s bytes to zstandard while a frame tracker watches them."""

    def __init__(self, source: ReadStream, tracker: ZstdFrameTracker) -> None:
        self._source = source
        self._tracker = tracker

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._tracker.feed(data)
        return data


class _ZstdReader(io.RawIOBase):
    """Raw reader over a zstd stream of one or more frames.

    zstandard's stream reader decodes straight into the caller's buffer, whole
    buffers at a time, and never holds more than one input chunk and one
    output buffer, so a decompression bomb cannot balloon memory. It does not
    notice a stream cut mid-frame; the frame tracker does. Raises
    errdefs.InvalidArgument for corrupt, cut or trailing bytes.
    """

    def __init__(self, source: ReadStream) -> None:
        self._tracker = ZstdFrameTracker()
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            _TrackedSource(source, self._tracker),  # type: ignore[arg-type]  # zstandard only calls read()
            read_size=_INPUT_CHUNK,
            read_across_frames=True,
            closefd=False,
        )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            n = self._reader.readinto(buffer)
        except zstandard.ZstdError as exc:
            raise errdefs.InvalidArgument(f"corrupt zstd data in layer: {exc}") from exc
        if not n and not self._tracker.at_frame_end:
            raise errdefs.InvalidArgument(_TRUNCATED.format(name="zstd"))
        return n


_TRUNCATED = "{name} stream is truncated: it ended before the end of its data"


def decompress_stream(
    fileobj: ReadStream, compression: Compression | str | None = None
) -> ReadStream:
    """A readable binary stream of the uncompressed bytes of ``fileobj``.

    ``compression=None`` detects it from the magic bytes. The result is a raw
    (unbuffered) stream supporting ``readinto``; wrap it in io.BufferedReader
    for small reads.
    """
    magic = _read_at_most(fileobj, MAGIC_LENGTH)
    chosen = detect_compression(magic) if compression is None else Compression.parse(compression)
    source = _PrefixedReader(magic, fileobj)
    if chosen is Compression.GZIP:
        return _GzipReader(source)
    if chosen is Compression.ZSTD:
        return _ZstdReader(source)
    return source


def _read_at_most(fileobj: ReadStream, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = fileobj.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _Encoder(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class CompressingWriter(io.RawIOBase):
    """A writable stream that compresses into ``sink``; ``close`` finishes the stream
    but leaves ``sink`` open."""

    def __init__(self, sink: BinaryIO, compression: Compression, *, level: int | None = None):
        self._sink = sink
        self._encoder: _Encoder | None
        if compression is Compression.GZIP:
            self._encoder = zlib.compressobj(
                6 if level is None else level, zlib.DEFLATED, 16 + zlib.MAX_WBITS
            )
        elif compression is Compression.ZSTD:
            self._encoder = zstandard.ZstdCompressor(
                level=3 if level is None else level
            ).compressobj()
        else:
            self._encoder = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._encoder is None:
            self._sink.write(data)
        else:
            out = self._encoder.compress(data)
            if out:
                self._sink.write(out)
        return len(data)

    def close(self) -> None:
        if not self.closed and self._encoder is not None:
            tail = self._encoder.flush()
            if tail:
                self._sink.write(tail)
        super().close()
