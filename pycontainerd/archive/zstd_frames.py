"""Following the frame structure of a zstd stream, to tell a clean end from a cut one.

The ``zstandard`` package's streaming reader decodes fast into large buffers
but says nothing when its input stops in the middle of a frame: it simply
returns what it decoded. This tracker reads only the headers of a stream's
frames and blocks (RFC 8878: a few bytes per block of up to 128 KiB, so its
cost is negligible) and knows at any point whether the bytes seen so far end
exactly after a whole frame.
"""

from __future__ import annotations

from collections.abc import Callable

from pycontainerd import errdefs

ZSTD_FRAME_MAGIC = 0xFD2FB528
SKIPPABLE_MAGIC_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC_BASE = 0x184D2A50
_DICTIONARY_ID_SIZES = (0, 1, 2, 4)
_BLOCK_TYPE_RLE = 1
_BLOCK_TYPE_RESERVED = 3
_CHECKSUM_SIZE = 4


class ZstdFrameTracker:
    """Feed it the compressed bytes in order; ``at_frame_end`` says whether they end cleanly.

    Raises errdefs.InvalidArgument as soon as the bytes cannot be a zstd stream
    (a bad magic number or a reserved block type).
    """

    def __init__(self) -> None:
        self.frames = 0  # complete frames (zstd or skippable) seen so far
        self._skip = 0  # payload bytes to pass over before the next field
        self._field = bytearray()  # the header field being collected
        self._field_size = 4
        self._on_field: Callable[[bytes], None] = self._frame_magic
        self._checksum_size = 0

    @property
    def at_frame_end(self) -> bool:
        """True when the bytes so far are whole frames, at least one of them."""
        return (
            self.frames > 0
            and self._on_field == self._frame_magic
            and not self._field
            and not self._skip
        )

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        position, end = 0, len(view)
        while position < end:
            if self._skip:
                taken = min(self._skip, end - position)
                self._skip -= taken
                position += taken
                continue
            taken = min(self._field_size - len(self._field), end - position)
            self._field += view[position : position + taken]
            position += taken
            if len(self._field) == self._field_size:
                field = bytes(self._field)
                self._field.clear()
                self._on_field(field)

    def _expect(self, size: int, on_field: Callable[[bytes], None]) -> None:
        self._field_size = size
        self._on_field = on_field

    def _frame_magic(self, field: bytes) -> None:
        magic = int.from_bytes(field, "little")
        if magic == ZSTD_FRAME_MAGIC:
            self._expect(1, self._frame_header_descriptor)
        elif magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC_BASE:
            self._expect(4, self._skippable_size)
        else:
            raise errdefs.InvalidArgument(
                "corrupt zstd data in layer: expected a zstd frame, found other bytes"
            )

    def _frame_header_descriptor(self, field: bytes) -> None:
        descriptor = field[0]
        single_segment = bool(descriptor & 0x20)
        content_size_sizes = (1 if single_segment else 0, 2, 4, 8)
        self._checksum_size = _CHECKSUM_SIZE if descriptor & 0x04 else 0
        self._skip = (
            (0 if single_segment else 1)  # window descriptor
            + _DICTIONARY_ID_SIZES[descriptor & 0x03]
            + content_size_sizes[descriptor >> 6]
        )
        self._expect(3, self._block_header)

    def _block_header(self, field: bytes) -> None:
        header = int.from_bytes(field, "little")
        last, block_type, size = header & 1, (header >> 1) & 3, header >> 3
        if block_type == _BLOCK_TYPE_RESERVED:
            raise errdefs.InvalidArgument("corrupt zstd data in layer: reserved block type")
        self._skip = 1 if block_type == _BLOCK_TYPE_RLE else size
        if last:
            self._skip += self._checksum_size
            self._frame_done()

    def _skippable_size(self, field: bytes) -> None:
        self._skip = int.from_bytes(field, "little")
        self._frame_done()

    def _frame_done(self) -> None:
        self.frames += 1
        self._expect(4, self._frame_magic)
