"""Committed blobs: ``blobs/<algorithm>/<hex>``, immutable and read-only.

Blobs are shared by every namespace; who may see which blob is decided by the
metadata layer. Everything here is addressed by a validated digest, so a client
string never becomes a path without passing the digest grammar first.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from pycontainerd.content.models import BlobInfo
from pycontainerd.digest import HEX_LENGTHS, IO_CHUNK_SIZE, Digest, parse_digest
from pycontainerd.errdefs import AlreadyExists, InvalidArgument, NotFound
from pycontainerd.fsutil import ensure_dir, fsync_dir, utc_from_ns
from pycontainerd.mount import filesystem_type

READ_ONLY_MODE = 0o444
#: File systems whose pages are memory: a read of them never waits for a disk.
_MEMORY_FILE_SYSTEMS = frozenset({"tmpfs", "ramfs"})


class BlobRange:
    """``length`` bytes of an open blob from ``offset``, read one chunk at a time.

    It iterates like a file (blocking reads), and offers ``cached_chunk``: the
    next chunk only if reading it cannot wait for the disk (the page cache has it,
    asked with RWF_NOWAIT; or the blob is on a memory file system). An async
    reader takes that on its event loop and goes to a worker only for the rest,
    so a small read of a hot blob (ctr reads in 32 KiB calls) costs no thread hop.
    The descriptor is closed at the end, by ``close``, or when the range is dropped.

    A blob that is not a regular file (something replaced it: a FIFO, a device)
    is opened only by the first blocking read, in the worker, so whatever that
    open waits for holds up only this read, as a goroutine's open would in containerd.
    """

    def __init__(
        self, fd: int | None, offset: int, length: int, in_memory: bool, *, path: Path | None = None
    ) -> None:
        self._fd: int | None = None
        self._offset = offset
        self._remaining = length
        self._in_memory = in_memory
        self._deferred = path
        if fd is not None:
            self._own(fd)

    def _own(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def empty(cls, offset: int) -> BlobRange:
        return cls(None, offset, 0, True)

    def __iter__(self) -> BlobRange:
        return self

    def __next__(self) -> bytes:
        chunk = self.read_chunk()
        if not chunk:
            raise StopIteration
        return chunk

    def read_chunk(self) -> bytes:
        """The next chunk (b"" at the end), waiting for the disk if need be."""
        if self._deferred is not None:
            path, self._deferred = self._deferred, None
            self._own(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        if self._fd is None or self._remaining <= 0:
            self.close()
            return b""
        chunk = os.pread(self._fd, min(IO_CHUNK_SIZE, self._remaining), self._offset)
        return self._advance(chunk)

    def cached_chunk(self) -> bytes | None:
        """The next chunk if reading it cannot block (b"" at the end); None if it could."""
        if self._deferred is not None:
            return None
        if self._fd is None or self._remaining <= 0 or self._in_memory:
            return self.read_chunk()
        buffer = bytearray(min(IO_CHUNK_SIZE, self._remaining))
        try:
            got = os.preadv(self._fd, [buffer], self._offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:  # this file system cannot say: ask a worker
                return None
            raise
        if got == 0:
            return None  # nothing cached at this offset (the end is known by length)
        del buffer[got:]
        return self._advance(bytes(buffer))

    def _advance(self, chunk: bytes) -> bytes:
        if not chunk:  # the file is shorter than its record: end here
            self.close()
            return b""
        self._offset += len(chunk)
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        self._deferred = None
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:  # a range dropped before its end still lets go of its file
        self.close()


class BlobStore:
    """The committed half of the content store (the ingest half lives elsewhere)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_name = str(root)
        self._in_memory: bool | None = None

    def _on_memory(self) -> bool:
        if self._in_memory is None:  # asked once the root exists
            self._in_memory = filesystem_type(str(self.root)) in _MEMORY_FILE_SYSTEMS
        return self._in_memory

    def path(self, digest: str) -> Path:
        return Path(self._file_name(digest))

    def _file_name(self, digest: str) -> str:
        """The blob's path as a string: pathlib's joins cost more than the open on a hot read."""
        algorithm, hex_value = parse_digest(digest)
        return f"{self._root_name}/{algorithm}/{hex_value}"

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def info(self, digest: str) -> BlobInfo:
        path = self.path(digest)
        try:
            return _info_from_stat(Digest(digest), path.stat())
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def open(self, digest: str) -> io.BufferedReader:
        try:
            return open(self.path(digest), "rb")  # noqa: SIM115 - the caller owns it
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def read(self, digest: str, offset: int = 0, size: int = 0) -> BlobRange:
        """The blob from ``offset``, ``size`` bytes (0: up to the end), opened now.

        Checks (and the open) run now, not at the first chunk, so errors reach
        the caller before it starts streaming a reply.
        """
        if offset < 0 or size < 0:
            raise InvalidArgument(
                f"read of {digest} needs offset >= 0 and size >= 0, got {offset} and {size}"
            )
        path = self._file_name(digest)
        try:
            # Non-blocking, so that a FIFO in a blob's place cannot stall this open.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None
        try:
            status = os.fstat(fd)
            if offset > status.st_size:
                raise InvalidArgument(
                    f"read offset {offset} is beyond the end of {digest} ({status.st_size} bytes)"
                )
        except BaseException:
            os.close(fd)
            raise
        remaining = status.st_size - offset if size == 0 else min(size, status.st_size - offset)
        if not stat.S_ISREG(status.st_mode):
            os.close(fd)
            return BlobRange(None, offset, remaining, False, path=Path(path))
        os.set_blocking(fd, True)
        return BlobRange(fd, offset, remaining, self._on_memory())

    def delete(self, digest: str) -> None:
        path = self.path(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None
        fsync_dir(path.parent)

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob; files whose names are not digests are skipped."""
        for algorithm, hex_length in HEX_LENGTHS.items():
            directory = self.root / algorithm
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if len(entry.name) != hex_length or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    digest = Digest.from_parts(algorithm, entry.name)
                    yield _info_from_stat(digest, entry.stat(follow_symlinks=False))
                except (InvalidArgument, FileNotFoundError):
                    continue  # a stray file, or deleted while we walked

    def publish(self, source: Path, digest: Digest) -> None:
        """Move a finished, fsynced file into place as ``digest``.

        Raises AlreadyExists when the blob is already there. Readers never see
        a partial blob: the rename is atomic, and only complete data is renamed.
        """
        target = self.path(digest)
        ensure_dir(target.parent)
        if target.exists():
            raise AlreadyExists(f"content {digest} already exists")
        os.rename(source, target)
        fsync_dir(target.parent)


def _info_from_stat(digest: Digest, stat: os.stat_result) -> BlobInfo:
    committed_at = utc_from_ns(stat.st_mtime_ns)
    return BlobInfo(
        digest=digest, size=stat.st_size, created_at=committed_at, updated_at=committed_at
    )
