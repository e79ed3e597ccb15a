"""The shape of a readable byte stream as the layer readers use it."""

from __future__ import annotations

from typing import Protocol


class ReadStream(Protocol):
    """A binary stream that can ``read`` and ``readinto``.

    ``typing.BinaryIO`` has no ``readinto``, which the layer readers use to
    fill their buffers without a copy; raw and buffered ``io`` streams, HTTP
    blob readers and our own decompressing readers all have both.
    """

    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...

    def close(self) -> None: ...
