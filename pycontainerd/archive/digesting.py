"""Streams that compute a sha256 digest and a byte count of what passes through."""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO

from pycontainerd.streams import ReadStream


class DigestingReader(io.RawIOBase):
    """Raw reader that hashes every byte read from ``source`` (which must have readinto)."""

    def __init__(self, source: ReadStream) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._source.readinto(buffer) or 0
        if n:
            with memoryview(buffer) as view:
                self._hash.update(view[:n])
            self.size += n
        return n

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the bytes read so far."""
        return "sha256:" + self._hash.hexdigest()


class DigestingWriter(io.RawIOBase):
    """Raw writer that hashes and counts every byte before passing it to ``sink``."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._hash.update(data)
        self._sink.write(data)
        n = len(data)
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the bytes written so far."""
        return "sha256:" + self._hash.hexdigest()
