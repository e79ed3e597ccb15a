"""Fetching manifests and blobs, with Range-based resume of broken transfers."""

from __future__ import annotations

import contextlib
import io
import socket

import requests
import urllib3

from pycontainerd.digest import Hasher, parse_digest
from pycontainerd.errdefs import OutOfRange, Unavailable
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.errors import DataLoss
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.remotes.reference import Reference
from pycontainerd.remotes.transport import Transport
from pycontainerd.streams import ReadStream

READ_CHUNK_SIZE = 1 << 20
DEFAULT_RESUME_ATTEMPTS = 3

# What a dropped connection looks like while reading a streamed body.
_BROKEN_STREAM = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    ConnectionError,
)


class Fetcher:
    """Reads the content of one repository."""

    def __init__(self, transport: Transport, ref: Reference) -> None:
        self._transport = transport
        self.reference = ref

    def fetch(
        self, desc: Descriptor, offset: int = 0, *, resume_attempts: int = DEFAULT_RESUME_ATTEMPTS
    ) -> BlobReader:
        """Open ``desc``'s content starting at byte ``offset``.

        The reader re-requests the remainder with a Range header when the
        connection breaks, up to ``resume_attempts`` times. It does not check
        the digest: wrap it in :class:`VerifyingReader` for that.
        """
        parse_digest(desc.digest)
        if not 0 <= offset <= desc.size:
            raise OutOfRange(f"offset {offset} is outside {desc.digest} (size {desc.size})")
        return BlobReader(self, desc, offset, resume_attempts)

    def open_response(self, desc: Descriptor, offset: int) -> tuple[requests.Response, int]:
        """GET the content from ``offset``; returns the response and the bytes to skip.

        A server that ignores Range answers 200 with the whole body; the caller
        then skips ``offset`` bytes itself.
        """
        repo = self.reference.path
        if mediatypes.is_manifest_or_index(desc.media_type):
            path = f"/{repo}/manifests/{desc.digest}"
            accept = f"{desc.media_type}, {mediatypes.RESOLVE_ACCEPT}"
        else:
            path = f"/{repo}/blobs/{desc.digest}"
            accept = "*/*"
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._transport.request(
            "GET", path, what=f"{self.reference.name}@{desc.digest}", headers=headers, stream=True
        )
        if offset and response.status_code != 206:
            return response, offset
        return response, 0


def _shut_down(response: requests.Response) -> None:
    """Wake a read blocked on ``response``'s socket (closing alone does not wake it)."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class BlobReader(io.RawIOBase):
    """A readable stream of one descriptor's bytes that resumes after broken connections."""

    def __init__(self, fetcher: Fetcher, desc: Descriptor, offset: int, attempts: int) -> None:
        super().__init__()
        self._fetcher = fetcher
        self.descriptor = desc
        self.position = offset
        self._attempts_left = attempts
        self._response: requests.Response | None = None
        self._open()

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        self._close_response()
        response, skip = self._fetcher.open_response(self.descriptor, self.position)
        self._response = response
        while skip:
            dropped = response.raw.read(min(skip, READ_CHUNK_SIZE), decode_content=False)
            if not dropped:
                raise DataLoss(f"{self.descriptor.digest}: server sent less than the offset")
            skip -= len(dropped)

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self.descriptor.size - self.position)
        if wanted <= 0 or self._response is None:
            return 0
        while True:
            try:
                chunk = self._response.raw.read(wanted, decode_content=False)
            except _BROKEN_STREAM as exc:
                self._resume(exc)
                continue
            if not chunk:
                # Early EOF: the server closed without sending everything.
                self._resume(None)
                continue
            buffer[: len(chunk)] = chunk
            self.position += len(chunk)
            return len(chunk)

    def _resume(self, cause: BaseException | None) -> None:
        if self._attempts_left <= 0:
            self._close_response()
            raise Unavailable(
                f"transfer of {self.descriptor.digest} broke at byte {self.position} of "
                f"{self.descriptor.size} and could not be resumed; retry the pull"
            ) from cause
        self._attempts_left -= 1
        self._open()

    def close(self) -> None:
        """Stop: a read blocked in another thread fails at once instead of resuming."""
        self._attempts_left = 0
        if self._response is not None:
            _shut_down(self._response)
        self._close_response()
        super().close()


class VerifyingReader(io.RawIOBase):
    """Passes a stream through while checking it ends at the descriptor's size and digest.

    Raises DataLoss on a size or digest mismatch, at the read that reaches the end.
    When resuming from ``offset``, pass a ``hasher`` already fed with the bytes before it.
    """

    def __init__(
        self, stream: ReadStream, desc: Descriptor, *, offset: int = 0, hasher: Hasher | None = None
    ) -> None:
        super().__init__()
        algorithm, _ = parse_digest(desc.digest)
        self._stream = stream
        self._desc = desc
        self._hasher = hasher or Hasher(algorithm)
        self._count = offset
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        chunk = self._stream.read(len(buffer))
        if chunk:
            self._count += len(chunk)
            if self._count > self._desc.size:
                raise DataLoss(
                    f"{self._desc.digest}: received more than the expected {self._desc.size} bytes"
                )
            self._hasher.update(chunk)
            buffer[: len(chunk)] = chunk
            return len(chunk)
        self._verify()
        return 0

    def _verify(self) -> None:
        if self._verified:
            return
        if self._count != self._desc.size:
            raise DataLoss(
                f"{self._desc.digest}: content ended after {self._count} bytes, "
                f"expected {self._desc.size}"
            )
        actual = self._hasher.digest()
        if actual != self._desc.digest:
            raise DataLoss(f"digest mismatch: expected {self._desc.digest}, got {actual}")
        self._verified = True

    def close(self) -> None:
        self._stream.close()
        super().close()


def read_all(fetcher: Fetcher, desc: Descriptor) -> bytes:
    """Fetch and verify a whole (small) object such as a manifest or config."""
    with VerifyingReader(fetcher.fetch(desc), desc) as reader:
        return reader.read()
