"""Content digests in the OCI form ``<algorithm>:<lowercase hex>``.

Parsing accepts the algorithms the OCI image spec registers (sha256, sha512)
plus sha384, which containerd's digest library also knows. Only sha256 is the
canonical algorithm: it is the one the content store hashes with, so anything
that must be *produced* by the store goes through :func:`parse_writable_digest`.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from pycontainerd.errdefs import InvalidArgument

CANONICAL_ALGORITHM = "sha256"
HEX_LENGTHS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}
IO_CHUNK_SIZE = 1 << 20

_EXPECTED_FORM = "expected sha256:<64 lowercase hex digits> (sha384/sha512 also accepted)"
# OCI grammar: algorithm components joined by [+._-], then ":" and the encoded part.
_GENERAL_FORM = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_LOWER_HEX = re.compile(r"^[0-9a-f]+$")


def parse_digest(value: str) -> tuple[str, str]:
    """Split and validate a digest string into ``(algorithm, hex)``.

    Raises InvalidArgument naming the bad value and the expected form.
    """
    if isinstance(value, Digest):  # validated when it was made
        return value.algorithm, value.hex
    if not isinstance(value, str) or not _GENERAL_FORM.match(value):
        raise InvalidArgument(f"invalid digest {value!r}: {_EXPECTED_FORM}")
    algorithm, _, encoded = value.partition(":")
    length = HEX_LENGTHS.get(algorithm)
    if length is None:
        raise InvalidArgument(
            f"unsupported digest algorithm {algorithm!r} in {value!r}: {_EXPECTED_FORM}"
        )
    if len(encoded) != length or not _LOWER_HEX.match(encoded):
        raise InvalidArgument(
            f"invalid {algorithm} digest {value!r}: expected {algorithm}:<{length} "
            "lowercase hex digits>"
        )
    return algorithm, encoded


class Digest(str):
    """A validated digest; behaves as the plain string everywhere a str is used."""

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        if isinstance(value, Digest):
            return value
        parse_digest(value)
        return super().__new__(cls, value)

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        return self.partition(":")[2]

    @classmethod
    def from_parts(cls, algorithm: str, hex_value: str) -> Digest:
        return cls(f"{algorithm}:{hex_value}")


def parse_writable_digest(value: str) -> Digest:
    """Validate a digest the store must produce itself, so it must be sha256."""
    digest = Digest(value)
    if digest.algorithm != CANONICAL_ALGORITHM:
        raise InvalidArgument(
            f"digest {value!r} uses {digest.algorithm}, but this store only writes "
            f"{CANONICAL_ALGORITHM} content; pass a {CANONICAL_ALGORITHM}:<64 hex> digest"
        )
    return digest


class Hasher:
    """Streaming digest computation (wraps hashlib, never loops per byte)."""

    __slots__ = ("_algorithm", "_hash")

    def __init__(self, algorithm: str = CANONICAL_ALGORITHM) -> None:
        if algorithm not in HEX_LENGTHS:
            raise InvalidArgument(
                f"unsupported digest algorithm {algorithm!r}: use one of {sorted(HEX_LENGTHS)}"
            )
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def update_from(self, stream: BinaryIO, chunk_size: int = IO_CHUNK_SIZE) -> int:
        """Feed a whole stream from its current position; returns the bytes read."""
        total = 0
        while chunk := stream.read(chunk_size):
            self._hash.update(chunk)
            total += len(chunk)
        return total

    def reset(self) -> None:
        self._hash = hashlib.new(self._algorithm)

    def digest(self) -> Digest:
        return Digest.from_parts(self._algorithm, self._hash.hexdigest())


def digest_of_bytes(
    data: bytes | bytearray | memoryview, algorithm: str = CANONICAL_ALGORITHM
) -> Digest:
    hasher = Hasher(algorithm)
    hasher.update(data)
    return hasher.digest()


def digest_of_stream(stream: BinaryIO, algorithm: str = CANONICAL_ALGORITHM) -> Digest:
    hasher = Hasher(algorithm)
    hasher.update_from(stream)
    return hasher.digest()
