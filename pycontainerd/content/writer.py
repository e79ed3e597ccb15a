"""A write transaction into the content store, resumable until committed."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from types import TracebackType

from pycontainerd.content.blobs import READ_ONLY_MODE, BlobStore
from pycontainerd.content.ingest import IngestDir
from pycontainerd.content.locks import IngestLock
from pycontainerd.content.models import IngestStatus
from pycontainerd.digest import Digest, Hasher, parse_writable_digest
from pycontainerd.diskspace import full_error, is_disk_full
from pycontainerd.errdefs import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument
from pycontainerd.fsutil import WRITABLE_MODE, utc_now, write_all


class IngestWriter:
    """Appends to one ingest while holding its lock; obtain it from the store.

    Not thread-safe: one caller drives a writer. ``close()`` keeps the ingest
    so that a later writer for the same ref resumes where this one stopped.
    A failed ``commit()`` check also keeps the writer open, so the caller can
    ``truncate(0)`` and rewrite, or close it.
    """

    def __init__(
        self,
        *,
        ingest: IngestDir,
        lock: IngestLock,
        blobs: BlobStore,
        status: IngestStatus,
        data_fd: int,
        hasher: Hasher,
    ) -> None:
        self._ingest = ingest
        self._lock = lock
        self._blobs = blobs
        self._fd = data_fd
        self._hasher = hasher
        self._ref = status.ref
        self._offset = status.offset
        self._total = status.total
        self._expected = status.expected
        self._started_at = status.started_at
        self._updated_at = status.updated_at

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def total(self) -> int:
        return self._total

    @property
    def expected(self) -> Digest | None:
        return self._expected

    @property
    def started_at(self) -> datetime:
        return self._started_at

    @property
    def updated_at(self) -> datetime:
        return self._updated_at

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def status(self) -> IngestStatus:
        return IngestStatus(
            ref=self._ref,
            offset=self._offset,
            total=self._total,
            expected=self._expected,
            started_at=self._started_at,
            updated_at=self._updated_at,
        )

    def digest(self) -> Digest:
        """Digest of everything written so far."""
        return self._hasher.digest()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` at the current offset; returns the number of bytes."""
        self._require_open()
        try:
            write_all(self._fd, data)
        except OSError as exc:
            # Drop what part of ``data`` got out, so that offset and hash still
            # describe the file, and so that a full disk gets those blocks back.
            with contextlib.suppress(OSError):  # the write's own error is the one to report
                os.ftruncate(self._fd, self._offset)
                os.lseek(self._fd, self._offset, os.SEEK_SET)
            if is_disk_full(exc):
                raise full_error(exc, self._ingest.path, "writing content") from exc
            raise
        self._hasher.update(data)
        self._offset += len(data)
        self._updated_at = utc_now()
        return len(data)

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write at ``offset``, which must be the current offset or 0 to restart."""
        self._require_open()
        if offset == 0 and self._offset != 0:
            self.truncate(0)
        elif offset != self._offset:
            raise InvalidArgument(
                f"write to ref {self._ref!r} at offset {offset}, but the ingest is at "
                f"{self._offset}: continue at {self._offset} or restart at 0"
            )
        return self.write(data)

    def truncate(self, size: int = 0) -> None:
        """Discard written data. Only 0 is supported: the hash cannot rewind."""
        self._require_open()
        if size != 0:
            raise InvalidArgument(f"truncate of ref {self._ref!r} supports only size 0, got {size}")
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hasher.reset()
        self._offset = 0
        self._updated_at = utc_now()

    def set_expectations(self, total: int | None = None, expected: str | None = None) -> None:
        """Record a total and/or expected digest announced after the writer opened."""
        self._require_open()
        if total is not None and total < 0:
            raise InvalidArgument(f"total for ref {self._ref!r} must be >= 0, got {total}")
        parsed = parse_writable_digest(expected) if expected else None
        self._ingest.record_expectations(total, parsed)
        if total is not None:
            self._total = total
        if parsed is not None:
            self._expected = parsed

    def sync(self) -> None:
        """Make the bytes written so far durable (commit and close also do this)."""
        self._require_open()
        os.fsync(self._fd)

    def commit(self, size: int = 0, expected: str | None = None) -> Digest:
        """Check the data against ``size``/``expected`` and publish it as a blob.

        ``size`` 0 and ``expected`` None fall back to the announced total and
        expected digest. On a mismatch nothing is committed and the writer stays
        open (FailedPrecondition). If the blob already exists the ingest is
        discarded and AlreadyExists raised; if the ingest was aborted meanwhile,
        Aborted. Afterwards the writer is closed.
        """
        self._require_open()
        want_digest = parse_writable_digest(expected) if expected else self._expected
        want_size = size or self._total
        if want_size and want_size != self._offset:
            raise FailedPrecondition(
                f"commit of ref {self._ref!r}: {self._offset} bytes written, expected "
                f"{want_size}; the ingest is kept"
            )
        actual = self.digest()
        if want_digest is not None and want_digest != actual:
            raise FailedPrecondition(
                f"commit of ref {self._ref!r}: written content has digest {actual}, expected "
                f"{want_digest}; the ingest is kept"
            )
        self._require_ingest_still_ours()
        committed_at = utc_now().timestamp()
        # Read-only before the rename, so the blob never appears writable.
        os.fchmod(self._fd, READ_ONLY_MODE)
        os.utime(self._fd, (committed_at, committed_at))
        os.fsync(self._fd)
        try:
            self._blobs.publish(self._ingest.data_path, actual)
        except AlreadyExists:
            self._discard()
            raise
        except BaseException:
            os.fchmod(self._fd, WRITABLE_MODE)  # still an ingest: keep it resumable
            raise
        self._discard()
        return actual

    def close(self) -> None:
        """Flush and release the ref, keeping the ingest for a later resume."""
        if self.closed:
            return
        try:
            os.fsync(self._fd)
        finally:
            self._release()

    def __enter__(self) -> IngestWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _require_ingest_still_ours(self) -> None:
        """Refuse to publish when an abort removed (or replaced) our data file.

        Without this, a writer cancelled by abort could rename the data of a
        newer ingest for the same ref into place under its own digest.
        """
        ours = os.fstat(self._fd)
        try:
            on_disk = os.stat(self._ingest.data_path)
        except FileNotFoundError:
            on_disk = None
        if on_disk is None or (on_disk.st_dev, on_disk.st_ino) != (ours.st_dev, ours.st_ino):
            self._release()
            raise Aborted(
                f"write to ref {self._ref!r} was aborted while in progress; start a new write"
            )

    def _discard(self) -> None:
        """Remove the ingest directory (under our lock) and release everything."""
        self._ingest.remove()
        self._release()

    def _release(self) -> None:
        fd, self._fd = self._fd, -1
        try:
            os.close(fd)
        finally:
            self._lock.release()

    def _require_open(self) -> None:
        if self.closed:
            raise FailedPrecondition(
                f"writer for ref {self._ref!r} is closed; open a new writer to resume"
            )
